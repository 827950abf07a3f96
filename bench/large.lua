-- wrk script: a Messages API request with a 2 MiB JSON body; prints a JSON summary.
wrk.method = "POST"
wrk.headers["content-type"] = "application/json"
wrk.headers["anthropic-version"] = "2023-06-01"
wrk.headers["x-api-key"] = os.getenv("BENCH_API_KEY") or "cr_bench_key_000001"
local head = '{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"'
local tail = '"}]}'
wrk.body = head .. string.rep("x", 2 * 1024 * 1024 - #head - #tail) .. tail

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"bytes":%d,"body_bytes":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},"latency_us":{"p50":%d,"p99":%d}}\n',
    summary.requests, summary.duration, summary.bytes, #wrk.body, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
