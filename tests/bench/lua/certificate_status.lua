-- GET /api/v1/public/certificates/{identifier}/status (no auth), identifiers cycling over the
-- registered certificates.
local pool = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "pool.lua")

setup = pool.setup

function init(args)
  pool.init(args)
end

function request()
  local identifier = pool.next()
  return wrk.format("GET", "/api/v1/public/certificates/" .. identifier .. "/status")
end
