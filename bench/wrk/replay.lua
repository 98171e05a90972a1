-- wrk script: replay a file of varied requests (other ids, other API keys on every request).
--
--   wrk -t2 -c16 -d20s --latency -s bench/wrk/replay.lua http://127.0.0.1:PORT -- REQUESTS.tsv
--
-- REQUESTS.tsv (written by bench/run.py): one request per line,
--   METHOD <TAB> PATH <TAB> API-KEY <TAB> JSON-BODY-or-empty
-- Each thread formats every request once in init() and cycles through them from its own
-- offset, so requests vary without per-request Lua work. done() prints one line
-- "BENCH_JSON {...}" with the figures bench/run.py reads (latencies in microseconds).

local threads = {}
local counter = 0

function setup(thread)
   thread:set("thread_index", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

local requests = {}
local position = 1

local function split_tabs(line)
   local fields = {}
   local start = 1
   while true do
      local tab = string.find(line, "\t", start, true)
      if tab == nil then
         table.insert(fields, string.sub(line, start))
         return fields
      end
      table.insert(fields, string.sub(line, start, tab - 1))
      start = tab + 1
   end
end

function init(args)
   local path = args[1]
   if path == nil then
      error("usage: wrk ... -s replay.lua URL -- REQUESTS.tsv")
   end
   for line in io.lines(path) do
      if line ~= "" then
         local f = split_tabs(line)
         local headers = { ["Authorization"] = "Bearer " .. f[3] }
         local body = nil
         if f[4] ~= nil and f[4] ~= "" then
            headers["Content-Type"] = "application/json"
            body = f[4]
         end
         table.insert(requests, wrk.format(f[1], f[2], headers, body))
      end
   end
   if #requests == 0 then
      error("no requests in " .. path)
   end
   local index = tonumber(thread_index) or 0
   position = (index * 7919) % #requests + 1
end

function request()
   local r = requests[position]
   position = position + 1
   if position > #requests then
      position = 1
   end
   return r
end

function done(summary, latency, _)
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, '
         .. '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, '
         .. '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency:percentile(50), latency:percentile(90),
      latency:percentile(99), latency.max))
end
