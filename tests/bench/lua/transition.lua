-- POST /api/v1/cases/{id}/actions: `accept` on a freshly submitted case (version 1), a different
-- case on every request.
local pool = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "pool.lua")
local headers
local body = '{"action":"accept","version":1}'

setup = pool.setup

function init(args)
  local data = pool.init(args)
  headers = { ["Authorization"] = "Bearer " .. data.token, ["Content-Type"] = "application/json" }
end

function request()
  local id = pool.next()
  return wrk.format("POST", "/api/v1/cases/" .. id .. "/actions", headers, body)
end
