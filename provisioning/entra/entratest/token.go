package entratest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

const tokenLifetime = time.Hour

// serveDiscovery answers the tenant discovery document MSAL fetches when
// instance discovery is disabled ({authority}/{tenant}/v2.0/.well-known/openid-configuration).
func (s *Server) serveDiscovery(w http.ResponseWriter, tenant string) {
	if tenant != s.opts.TenantID && tenant != "organizations" && tenant != "common" {
		s.aadError(w, http.StatusBadRequest, "invalid_tenant", 90002,
			fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	base := s.ts.URL + "/" + tenant
	writeJSON(w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"issuer":                                s.ts.URL + "/" + s.opts.TenantID + "/v2.0",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"tenant_region_scope":                   "EU",
	})
}

// aadError writes the identity platform's OAuth error body (AADSTS codes).
func (s *Server) aadError(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", aadsts, desc, newID(), newID(), time.Now().UTC().Format("2006-01-02 15:04:05Z")),
		"error_codes":       []int{aadsts},
		"timestamp":         time.Now().UTC().Format("2006-01-02 15:04:05Z"),
		"trace_id":          newID(),
		"correlation_id":    newID(),
	})
}

// serveToken implements the client credentials grant with a client secret
// or a certificate-signed client assertion.
// SetTokenOutage makes the token endpoint unreachable while on: every
// token request's connection is closed without an answer, as a network
// failure between the service and the identity platform looks to a
// client. Graph routes keep working for tokens issued before.
func (s *Server) SetTokenOutage(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokenOutage = on
}

func (s *Server) serveToken(w http.ResponseWriter, r *http.Request, tenant string) {
	s.mu.Lock()
	s.counters.Tokens++
	outage := s.tokenOutage
	s.mu.Unlock()
	if outage {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				conn.Close()
				return
			}
		}
		panic(http.ErrAbortHandler) // closes the connection without an answer
	}
	if r.Method != http.MethodPost {
		s.aadError(w, http.StatusMethodNotAllowed, "invalid_request", 900561, "The endpoint only accepts POST requests.")
		return
	}
	if tenant != s.opts.TenantID {
		s.aadError(w, http.StatusBadRequest, "invalid_request", 90002, fmt.Sprintf("Tenant '%s' not found.", tenant))
		return
	}
	if err := r.ParseForm(); err != nil {
		s.aadError(w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain a valid form.")
		return
	}
	f := r.PostForm
	if f.Get("grant_type") != "client_credentials" {
		s.aadError(w, http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type.")
		return
	}
	clientID := f.Get("client_id")
	if clientID == "" {
		if id, _, ok := r.BasicAuth(); ok {
			clientID = id
		}
	}
	if clientID != s.opts.ClientID {
		s.aadError(w, http.StatusBadRequest, "unauthorized_client", 700016,
			fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'.", clientID, tenant))
		return
	}
	scope := f.Get("scope")
	if !strings.HasSuffix(strings.Fields(scope + " x")[0], "/.default") {
		s.aadError(w, http.StatusBadRequest, "invalid_scope", 1002012,
			fmt.Sprintf("The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.", scope))
		return
	}
	switch {
	case f.Get("client_secret") != "" || hasBasicSecret(r):
		secret := f.Get("client_secret")
		if secret == "" {
			_, secret, _ = r.BasicAuth()
		}
		if subtle.ConstantTimeCompare([]byte(secret), []byte(s.opts.ClientSecret)) != 1 {
			s.aadError(w, http.StatusUnauthorized, "invalid_client", 7000215,
				fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID))
			return
		}
	case f.Get("client_assertion") != "":
		if f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			s.aadError(w, http.StatusBadRequest, "invalid_request", 50027, "Invalid client_assertion_type.")
			return
		}
		if err := s.checkAssertion(f.Get("client_assertion"), clientID, s.ts.URL+"/"+tenant+"/oauth2/v2.0/token"); err != nil {
			s.aadError(w, http.StatusUnauthorized, "invalid_client", 700027, "Client assertion failed signature validation: "+err.Error())
			return
		}
	default:
		s.aadError(w, http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
		return
	}
	s.mu.Lock()
	now := time.Now()
	tok := s.accessToken(s.granted(), now) // permissions.go
	s.tokens[tokenKey(tok)] = now.Add(tokenLifetime)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type":     "Bearer",
		"expires_in":     int(tokenLifetime.Seconds()),
		"ext_expires_in": int(tokenLifetime.Seconds()),
		"access_token":   tok,
	})
}

func hasBasicSecret(r *http.Request) bool {
	_, p, ok := r.BasicAuth()
	return ok && p != ""
}

// issueToken returns a JWT-shaped access token: an unsigned header, the
// claims (the app roles in "roles", as in an app-only token for Graph:
// https://learn.microsoft.com/en-us/entra/identity-platform/access-token-claims-reference)
// and a random part that makes it unguessable.
func issueToken(claims []byte) string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return base64.RawURLEncoding.EncodeToString([]byte(`{"typ":"JWT","alg":"none"}`)) + "." +
		base64.RawURLEncoding.EncodeToString(claims) + "." + base64.RawURLEncoding.EncodeToString(b[:])
}

// validToken reports whether the bearer token was issued and has not
// expired. Lookup is by SHA-256 of the presented token, so the comparison
// time does not depend on how many leading characters match.
func (s *Server) validToken(tok string) bool {
	if tok == "" {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	exp, ok := s.tokens[tokenKey(tok)]
	return ok && time.Now().Before(exp)
}

// checkAssertion validates a client assertion JWT: structure, claims
// (iss = sub = client id, aud = token endpoint, exp in the future) and,
// when a certificate is registered, its thumbprint and signature (PS256 or RS256).
func (s *Server) checkAssertion(jwt, clientID, aud string) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return fmt.Errorf("not a compact JWS")
	}
	var hdr struct {
		Alg     string `json:"alg"`
		X5t     string `json:"x5t"`
		X5tS256 string `json:"x5t#S256"`
	}
	var claims struct {
		Aud string `json:"aud"`
		Iss string `json:"iss"`
		Sub string `json:"sub"`
		Exp int64  `json:"exp"`
	}
	if err := decodeSegment(parts[0], &hdr); err != nil {
		return fmt.Errorf("header: %w", err)
	}
	if err := decodeSegment(parts[1], &claims); err != nil {
		return fmt.Errorf("claims: %w", err)
	}
	if claims.Iss != clientID || claims.Sub != clientID {
		return fmt.Errorf("iss/sub must be the client id")
	}
	if !strings.EqualFold(claims.Aud, aud) {
		return fmt.Errorf("aud %q is not the token endpoint", claims.Aud)
	}
	if time.Unix(claims.Exp, 0).Before(time.Now()) {
		return fmt.Errorf("assertion expired")
	}
	if hdr.X5t == "" && hdr.X5tS256 == "" {
		return fmt.Errorf("no certificate thumbprint (x5t or x5t#S256)")
	}
	cert := s.opts.ClientCertificate
	if cert == nil {
		return nil // any well-formed assertion for the configured client
	}
	s1 := sha1.Sum(cert.Raw)
	s256 := sha256.Sum256(cert.Raw)
	if !thumbMatches(hdr.X5t, s1[:]) && !thumbMatches(hdr.X5tS256, s256[:]) {
		return fmt.Errorf("certificate thumbprint is not registered for the application")
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("registered certificate has no RSA key")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return fmt.Errorf("signature encoding: %w", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	switch hdr.Alg {
	case "PS256":
		err = rsa.VerifyPSS(pub, crypto.SHA256, digest[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto})
	case "RS256":
		err = rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig)
	default:
		return fmt.Errorf("unsupported alg %q", hdr.Alg)
	}
	if err != nil {
		return fmt.Errorf("bad signature")
	}
	return nil
}

func thumbMatches(got string, want []byte) bool {
	if got == "" {
		return false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding} {
		if b, err := enc.DecodeString(got); err == nil && subtle.ConstantTimeCompare(b, want) == 1 {
			return true
		}
	}
	return false
}

func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}
