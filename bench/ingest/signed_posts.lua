-- wrk script: POST pre-signed WhatsApp webhooks, a different message per request.
--
-- Each wrk thread reads its own file, "<prefix><thread>", one request per line:
--   <hex HMAC-SHA256 of the body> TAB <body>
-- The bodies (and so the message ids) are unique within a run. A file that runs out starts over
-- and the wrap is counted, so the runner can tell when ids were repeated.
-- done() prints one "BENCH_JSON {...}" line: wrk's summary plus how many 2xx and non-2xx
-- responses arrived (the acknowledged requests) and how many lines each thread used.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  file = assert(io.open(args[1] .. tid, "r"))
  sent, ok, non2xx, wraps = 0, 0, 0, 0
end

function request()
  local line = file:read("*l")
  if line == nil then
    wraps = wraps + 1
    file:seek("set", 0)
    line = file:read("*l")
  end
  local tab = line:find("\t", 1, true)
  sent = sent + 1
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Hub-Signature-256"] = "sha256=" .. line:sub(1, tab - 1),
  }, line:sub(tab + 1))
end

function response(status, headers, body)
  if status >= 200 and status < 300 then
    ok = ok + 1
  else
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local total_ok, total_non2xx, total_wraps, sent_list = 0, 0, 0, {}
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_non2xx = total_non2xx + t:get("non2xx")
    total_wraps = total_wraps + t:get("wraps")
    table.insert(sent_list, tostring(t:get("sent")))
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"duration_us":%d,"requests":%d,"ok":%d,"non2xx":%d,"wraps":%d,' ..
    '"sent":[%s],"p50_us":%d,"p99_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}}\n',
    summary.duration, summary.requests, total_ok, total_non2xx, total_wraps,
    table.concat(sent_list, ","), latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
