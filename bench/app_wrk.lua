-- wrk script for bench/app_load.py --wrk (closed loop: the capacity cross-check).
-- Optional environment: WRK_METHOD, WRK_BODY, WRK_TOKEN (Bearer JWT).
-- Prints one line "JSON {...}" with the rate, percentiles (ms) and errors.
local method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")
local token = os.getenv("WRK_TOKEN")

wrk.method = method
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end

function done(summary, latency, requests)
  local secs = summary.duration / 1e6
  local e = summary.errors
  local non2xx = e.status
  local errors = e.connect + e.read + e.write + e.timeout + non2xx
  local function ms(p) return latency:percentile(p) / 1000.0 end
  io.write(string.format(
    'JSON {"tool":"wrk","requests":%d,"rps":%.1f,"p50_ms":%.2f,"p95_ms":%.2f,' ..
    '"p99_ms":%.2f,"max_ms":%.2f,"errors":%d,"connect_errors":%d,"read_errors":%d,' ..
    '"write_errors":%d,"timeouts":%d,"non_2xx_3xx":%d}\n',
    summary.requests, summary.requests / secs, ms(50), ms(95), ms(99),
    latency.max / 1000.0, errors, e.connect, e.read, e.write, e.timeout, non2xx))
end
