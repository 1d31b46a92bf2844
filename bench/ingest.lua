-- wrk script for bench/ingest.py: POST /v1/events with fresh event ids on every request.
-- Env: BATCH (events per request), TOKENS_FILE (bearer tokens, one a line), NOW (Unix seconds),
-- SPREAD (0: every event dated NOW; else each dated up to SPREAD seconds before it is sent).
local batch = tonumber(os.getenv("BATCH") or "1")
local tokens = {}
for t in io.lines(os.getenv("TOKENS_FILE")) do tokens[#tokens + 1] = t end
local now = tonumber(os.getenv("NOW"))
local spread = tonumber(os.getenv("SPREAD") or "0")
local counter = 0
local thread_id = 0

function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end

function init(args)
  math.randomseed(os.time() + (tid or 0) * 7919)
end

local function uuid()
  return string.format("%08x-%04x-4%03x-8%03x-%012x",
    math.random(0, 0x7fffffff), math.random(0, 0xffff), math.random(0, 0xfff),
    math.random(0, 0xfff), math.random(0, 0xffffffff) * 65536 + math.random(0, 0xffff))
end

request = function()
  counter = counter + 1
  local parts = {}
  local sent = now
  if spread > 0 then sent = os.time() end
  for i = 1, batch do
    local ts = now
    if spread > 0 then ts = sent - math.random(0, spread) end
    -- Zipf-ish papers: a few hot, a long tail
    local paper = math.floor(20000 * math.random() ^ 3)
    parts[i] = string.format(
      '{"id":"%s","type":"%s","paper":{"id":"arxiv:2401.%05d","title":"Paper %d"},"ts":%d,"site":"arxiv.org"}',
      uuid(), (i % 3 == 0) and "click" or "open", paper + 1, paper + 1, ts)
  end
  local body = '{"events":[' .. table.concat(parts, ",") .. ']}'
  local token = tokens[(counter % #tokens) + 1]
  return wrk.format("POST", "/v1/events",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}, body)
end
