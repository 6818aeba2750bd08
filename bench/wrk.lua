-- Replays a file of prepared requests (one per line) and reports one JSON line in done().
-- Line format: METHOD <tab> PATH <tab> HEX-BODY <tab> Header: value <tab> ...
-- Arguments after `--`: the request file, the most answers to collect (all threads), threads.
-- Throughput is answers / the span from the first request to the last answer, measured here
-- (wrk's own duration is the full -d even when the count limit stops threads early).
local ffi = require("ffi")
ffi.cdef [[
typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
int clock_gettime(int clk_id, bench_timespec *tp);
]]
local clock = ffi.new("bench_timespec")
local function now_us()
  ffi.C.clock_gettime(1, clock) -- CLOCK_MONOTONIC: comparable across threads
  return tonumber(clock.tv_sec) * 1000000 + tonumber(clock.tv_nsec) / 1000
end

local threads, created = {}, 0
function setup(thread)
  thread:set("thread_index", created)
  created = created + 1
  table.insert(threads, thread)
end

-- Per-thread state (globals, so done() can read them with thread:get).
statuses, retry_after, answered, first_us, last_us = {}, 0, 0, 0, 0
local prepared, position, stride, limit = {}, 0, 1, math.huge

local function unhex(text)
  return (text:gsub("..", function(pair) return string.char(tonumber(pair, 16)) end))
end

function init(args)
  local stride_arg = tonumber(args[3]) or 1
  for line in io.lines(args[1]) do
    local fields = {}
    for field in (line .. "\t"):gmatch("([^\t]*)\t") do fields[#fields + 1] = field end
    local headers = {}
    for k = 4, #fields do
      local name, value = fields[k]:match("^([^:]+):%s*(.*)$")
      headers[name] = value
    end
    local body = nil
    if fields[3] ~= "" then body = unhex(fields[3]) end
    prepared[#prepared + 1] = wrk.format(fields[1], fields[2], headers, body)
  end
  stride = stride_arg
  position = thread_index
  limit = math.ceil((tonumber(args[2]) or math.huge) / stride)
end

function request()
  if first_us == 0 then first_us = now_us() end
  local next_request = prepared[(position % #prepared) + 1]
  position = position + stride
  return next_request
end

function response(status, headers, body)
  last_us = now_us()
  answered = answered + 1
  statuses[status] = (statuses[status] or 0) + 1
  if status == 503 and (headers["Retry-After"] or headers["retry-after"]) then
    retry_after = retry_after + 1
  end
  if answered >= limit then wrk.thread:stop() end
end

function done(summary, latency, requests)
  local codes, retried, first, last, total = {}, 0, math.huge, 0, 0
  for _, thread in ipairs(threads) do
    for code, count in pairs(thread:get("statuses")) do
      codes[code] = (codes[code] or 0) + count
    end
    retried = retried + thread:get("retry_after")
    total = total + thread:get("answered")
    local thread_first, thread_last = thread:get("first_us"), thread:get("last_us")
    if thread_first > 0 and thread_first < first then first = thread_first end
    if thread_last > last then last = thread_last end
  end
  local parts = {}
  for code, count in pairs(codes) do parts[#parts + 1] = string.format('"%d": %d', code, count) end
  local span = 0
  if last > first then span = last - first end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"answered": %d, "span_us": %d, "duration_us": %d, "statuses": {%s}, ' ..
    '"retry_after": %d, "errors": {"connect": %d, "read": %d, "write": %d, "timeout": %d}, ' ..
    '"latency_us": {"p50": %d, "p90": %d, "p99": %d, "max": %d, "mean": %.1f}}\n',
    total, span, summary.duration, table.concat(parts, ", "), retried,
    e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    latency.mean))
end
