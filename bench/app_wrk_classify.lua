-- wrk script for bench/app_external.py: POST classify (or recommend) with a fresh body
-- per request, so every classify is a cache miss (unique description) as issue #14 asks.
-- Environment: WRK_TOKEN (Bearer JWT), WRK_WORKFLOW (classify | recommend),
-- WRK_WORDS (":"-separated base descriptions), WRK_CODES (":"-separated taxonomy codes),
-- WRK_NONCE (a run-unique prefix: a repeated run must not hit the previous run's cache).
-- Prints one line "JSON {...}" with the rate, percentiles (ms), status classes and errors.
local token = os.getenv("WRK_TOKEN") or ""
local workflow = os.getenv("WRK_WORKFLOW") or "classify"
local nonce = os.getenv("WRK_NONCE") or tostring(os.time())
-- WRK_FIXED=1: the descriptions are sent as they are (a hot set: cache hits once seen)
local fixed = os.getenv("WRK_FIXED") == "1"

local function split(s)
  local out = {}
  for item in string.gmatch(s or "", "[^:]+") do out[#out + 1] = item end
  return out
end

local words = split(os.getenv("WRK_WORDS"))
if #words == 0 then words = {"battery cordless drill driver 18v", "office paper a4 80gsm"} end
local codes = split(os.getenv("WRK_CODES"))

local threads = {}
local counter = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
  threads[#threads + 1] = thread
end

function init(args)
  counter = 0
  statuses = {}
  math.randomseed(os.time() + (tid or 0) * 7919)
end

local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}

function request()
  counter = counter + 1
  local body
  if workflow == "recommend" and #codes > 0 then
    body = string.format('{"inputs":{"code":"%s"}}', codes[math.random(#codes)])
  elseif fixed then
    body = string.format('{"inputs":{"description":"%s"}}', words[math.random(#words)])
  else
    body = string.format('{"inputs":{"description":"%s ref %s-%d-%d"}}',
      words[math.random(#words)], nonce, tid or 0, counter)
  end
  return wrk.format("POST", "/workflows/" .. workflow .. "/execute", headers, body)
end

function response(status, hdrs, body)
  local k = tostring(status)
  statuses[k] = (statuses[k] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, t in ipairs(threads) do
    local s = t:get("statuses")
    if s then
      for k, v in pairs(s) do merged[k] = (merged[k] or 0) + v end
    end
  end
  local parts = {}
  for k, v in pairs(merged) do parts[#parts + 1] = string.format('"%s":%d', k, v) end
  local secs = summary.duration / 1e6
  local e = summary.errors
  local function ms(p) return latency:percentile(p) / 1000.0 end
  io.write(string.format(
    'JSON {"tool":"wrk","requests":%d,"rps":%.1f,"p50_ms":%.2f,"p95_ms":%.2f,' ..
    '"p99_ms":%.2f,"max_ms":%.2f,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"non_2xx_3xx":%d,"statuses":{%s}}\n',
    summary.requests, summary.requests / secs, ms(50), ms(95), ms(99),
    latency.max / 1000.0, e.connect, e.read, e.write, e.timeout, e.status,
    table.concat(parts, ",")))
end
