-- Shared by the benchmark scripts: a pool of items (ids, file ids, identifiers) read from a data
-- file that run.py writes, split between wrk's threads so that no two threads use the same item.
--
-- Script arguments (after `--` on wrk's command line):
--   1: the data file (Lua returning a table with `items`: one item per line in a long string)
--   2, 3: the slice of items to use, [first, last) 0-based (default: all of them)
--   4: the number of wrk threads (default 1)
-- Each thread takes an equal block of the slice and walks it in order. When a thread reaches the
-- end of its block it starts again at its beginning: fine for reads; for items that can be used
-- only once (files, cases to accept) run.py makes the slice big enough, and a reused item shows
-- up as a non-2xx response, never as throughput.
local M = {}
local next_tid = 0

function M.setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

function M.init(args)
  local data = dofile(args[1])
  local items = {}
  for line in data.items:gmatch("[^\n]+") do
    items[#items + 1] = line
  end
  data.items = items
  local first = tonumber(args[2]) or 0
  local last = tonumber(args[3]) or #items
  local threads = tonumber(args[4]) or 1
  local block = math.floor((last - first) / threads)
  if block < 1 or last > #items then
    error(string.format("pool: slice [%d, %d) of %d items cannot feed %d threads", first, last, #items, threads))
  end
  M.first = first + (tid or 0) * block + 1 -- Lua tables are 1-based
  M.last = M.first + block - 1
  M.i = M.first
  M.data = data
  return data
end

-- The next item and its 1-based index in the whole pool.
function M.next()
  local i = M.i
  M.i = i + 1
  if M.i > M.last then
    M.i = M.first
  end
  return M.data.items[i], i
end

return M
