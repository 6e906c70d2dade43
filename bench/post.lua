-- wrk script: POST the benchmark body (BODY, or the file BODY_FILE) with the bearer token from the environment, plus any extra
-- headers given as HEADERS="Name: value|Name: value" (the peer gateway's routing headers).
wrk.method = "POST"
-- BODY_FILE instead of BODY for a large body: one environment string may hold at most 128 KiB.
local body_file = os.getenv("BODY_FILE")
if body_file and body_file ~= "" then
  local f = assert(io.open(body_file, "rb"))
  wrk.body = f:read("*a")
  f:close()
else
  wrk.body = os.getenv("BODY")
end
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
for name, value in string.gmatch(os.getenv("HEADERS") or "", "([^:|]+):%s*([^|]+)") do
  wrk.headers[name] = value
end

local errors = 0
response = function(status, headers, body)
  if status ~= 200 then errors = errors + 1 end
end

done = function(summary, latency, requests)
  io.write(string.format("non-200 responses: %d\n", summary.errors.status))
end
