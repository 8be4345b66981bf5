-- Base 36, as Entry::encode writes times (exact: ms timestamps are far below 2^53), for the
-- scripts that write an entry's due time (push.lua, requeue.lua, lib/ordered).

local DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz'
local function base36(n)
  local out = ''
  repeat
    local digit = n % 36
    out = string.sub(DIGITS, digit + 1, digit + 1) .. out
    n = (n - digit) / 36
  until n == 0
  return out
end
