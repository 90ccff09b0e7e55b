-- Baseline: GET /rows/{id}, ids drawn at random from 1..N (N: first script argument, default
-- 10000, the rows the baseline app preloads).
local n = 10000

function init(args)
  n = tonumber(args[1]) or n
  math.randomseed(os.time() + (tid or 0))
end

function request()
  return wrk.format("GET", "/rows/" .. math.random(1, n))
end
