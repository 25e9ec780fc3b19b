-- wrk script for bench/load_submit.py: replays prepared requests (one per line:
-- METHOD \t PATH \t SESSION-TOKEN \t IDEMPOTENCY-KEY \t BODY), each thread its own share, and
-- counts answers by class. Usage: wrk -s load_submit.lua URL -- FILE THREADS

local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function init(args)
   local path, nthreads = args[1], tonumber(args[2])
   requests = {}
   local i = 0
   for line in io.lines(path) do
      if i % nthreads == tid then
         local method, url, token, key, body = line:match("^(%S+)\t(%S+)\t(%S+)\t(%S+)\t(.*)$")
         local headers = {
            ["X-Session-Token"] = token,
            ["Idempotency-Key"] = key,
            ["Content-Type"] = "application/json",
         }
         if body == "" then body = nil end
         table.insert(requests, wrk.format(method, url, headers, body))
      end
      i = i + 1
   end
   idx, wrapped = 0, 0
   s2, s4, s429, s5, other, accepted = 0, 0, 0, 0, 0, 0
end

function request()
   idx = idx + 1
   if idx > #requests then
      idx, wrapped = 1, wrapped + 1
   end
   return requests[idx]
end

function response(status, headers, body)
   if status == 429 then
      s429 = s429 + 1
   elseif status >= 500 then
      s5 = s5 + 1
   elseif status >= 400 then
      s4 = s4 + 1
   elseif status >= 200 and status < 300 then
      s2 = s2 + 1
      if body and string.find(body, '"status":"accepted"', 1, true) then
         accepted = accepted + 1
      end
   else
      other = other + 1
   end
end

function done(summary, latency, requests)
   local c = { s2 = 0, s4 = 0, s429 = 0, s5 = 0, other = 0, accepted = 0, wrapped = 0 }
   for _, t in ipairs(threads) do
      for k, _ in pairs(c) do
         c[k] = c[k] + (t:get(k) or 0)
      end
   end
   local e = summary.errors
   io.write(string.format(
      'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p95_us": %d, "p99_us": %d, ' ..
      '"max_us": %d, "s2": %d, "s4": %d, "s429": %d, "s5": %d, "other": %d, "accepted": %d, ' ..
      '"wrapped": %d, "socket_errors": %d}\n',
      summary.requests, summary.duration, latency:percentile(50), latency:percentile(95),
      latency:percentile(99), latency.max, c.s2, c.s4, c.s429, c.s5, c.other, c.accepted,
      c.wrapped, e.connect + e.read + e.write + e.timeout))
end
