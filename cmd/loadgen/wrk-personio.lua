-- wrk script: Personio webhook deliveries for personio-entra's receiver.
--
--   PERSONIO_WEBHOOK_TOKEN=... wrk -t1 -c32 -d15s --latency \
--       -s cmd/loadgen/wrk-personio.lua http://127.0.0.1:8080/webhooks/personio
--
-- Each request is a unique dataless delivery (docs/personio-api.md#webhook-deliveries),
-- cycling through person.updated, employment.updated and person.created over
-- 1,000 people from id 100000, so every one is stored and queued, not
-- recognised as a duplicate. The token goes verbatim in Authorization, as
-- Personio sends it. PERSONIO_COMPANY_ID sets company_id (default 4242).
-- wrk counts answers other than 2xx/3xx ("Non-2xx or 3xx responses"); the
-- receiver's personio_entra_webhook_requests_total{outcome="accepted"} must
-- grow by the number of requests wrk reports, or the run measured
-- something else (duplicates answer 200, refusals 4xx/503).

local token = os.getenv("PERSONIO_WEBHOOK_TOKEN")
if token == nil or token == "" then
  error("set PERSONIO_WEBHOOK_TOKEN to the receiver's webhook token")
end
local company = os.getenv("PERSONIO_COMPANY_ID") or "4242"
local events = { "person.updated", "employment.updated", "person.created" }
local threads = {}
local counter = 0
local stamp = os.date("!%Y-%m-%dT%H:%M:%S", os.time())

-- setup runs in the main Lua state; thread:set gives each thread's own
-- state the global tid, so threads never send the same delivery.
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local function make(counter)
  local n = (tid or 0) * 100000000 + counter
  local id = 100000 + n % 1000
  local ev = events[n % 3 + 1]
  local payload
  if ev == "employment.updated" then
    payload = string.format('{"employment":{"id":"e%d-0"},"person":{"id":"%d"}}', id, id)
  else
    payload = string.format('{"person":{"id":"%d"}}', id)
  end
  local body = string.format('{"company_id":"%s","event_name":"%s","meta":{},"occurred_at":"%s.%09dZ","payload":%s}',
    company, ev, stamp, n, payload)
  return wrk.format("POST", nil, { ["Content-Type"] = "application/json", ["Authorization"] = token }, body)
end

-- init prepares each thread's first WRK_PREPARE requests (default 300000,
-- about 100 MB) before the clock starts, so that building them costs the
-- measurement nothing; later ones are built as they are sent.
local prepared = {}
function init(args)
  for i = 1, tonumber(os.getenv("WRK_PREPARE") or "300000") do
    prepared[i] = make(i)
  end
end

function request()
  counter = counter + 1
  local r = prepared[counter]
  if r ~= nil then
    prepared[counter] = nil
    return r
  end
  return make(counter)
end
