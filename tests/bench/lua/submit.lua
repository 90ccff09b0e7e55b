-- POST /api/v1/cases: every request a new application with its own pre-uploaded file and a
-- unique Idempotency-Key. Items are "<citizen index> <file id>"; the data file holds, per
-- citizen, the token and the JSON body split around the file id.
local pool = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "pool.lua")
local data

setup = pool.setup

function init(args)
  data = pool.init(args)
end

function request()
  local item, index = pool.next()
  local citizen, file_id = item:match("^(%d+) (%S+)$")
  local c = data.citizens[tonumber(citizen)]
  local headers = {
    ["Authorization"] = "Bearer " .. c.token,
    ["Content-Type"] = "application/json",
    ["Idempotency-Key"] = data.run_id .. "-" .. index,
  }
  return wrk.format("POST", "/api/v1/cases", headers, c.body_head .. file_id .. c.body_tail)
end
