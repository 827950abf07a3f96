-- wrk script: the small request of small.lua, stopping after COUNT responses
-- (per thread; run with -t1), for figures that are totals over a fixed number
-- of requests (bench/cost.sh). Prints the number of responses it saw.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = os.getenv("BENCH_API_KEY") or "cr_bench_key_000001"
wrk.body = '{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"bench"}]}'

local limit = tonumber(os.getenv("COUNT") or "1000")
local seen = 0
local failed = 0

response = function(status, headers, body)
  seen = seen + 1
  if status ~= 200 then failed = failed + 1 end
  if seen >= limit then wrk.thread:stop() end
end

done = function(summary, latency, requests)
  io.write(string.format('{"requests":%d,"non_200":%d}\n', summary.requests, summary.errors.status))
end
