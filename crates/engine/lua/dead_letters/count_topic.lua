-- One more (or fewer) dead letter of a topic in a dead letter hash's per topic counts; a field
-- that reaches 0 is deleted. A script of one key: on a cluster the counts have a slot of their own.
-- KEYS[1] the counts hash
-- ARGV[1] topic, ARGV[2] how many more (negative: fewer).
-- Returns 1.
--- @include "lib/counts"

count_add(KEYS[1], ARGV[1], tonumber(ARGV[2]))
return 1
