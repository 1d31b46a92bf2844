"""The event store on Redis: ingestion, the paper catalogue, trending, history, export, erasure.

Ingesting one batch of one user's events runs one Lua script (``_INGEST_LUA``) made of
sections; each section's keys share a hash tag:

- **log** (``{log:<n>}``): adds each event id to the partition's de-duplication set and, only if
  it was new, appends the event to the stream, so an event is in the log exactly once however
  often the client retries it, and trims both to the retention window.
- **user** (``{u:<id>}``): the user's stream entries and seen / dismissed papers. The seen set
  (papers opened or clicked within the retention window) also tells whether the user is a new
  reader of a paper: a distinct reader counts once in trending and in the paper's readers.
- **papers** (``{p:<id>}`` each): each paper's catalogue entry (first seen, counts, metadata by
  quorum of distinct readers) and its scores in the public page's trending views (``day``,
  ``week``), each decayed to the entry's own time, so a reader costs a field, not a sorted-set
  write per view; :meth:`EventStore.trending` ranks a view from them when it is read, and reuses
  the ranking for ``trending_view_ttl_s``.
- **catalogue**: the set of every paper and when it was first seen.
- **trending** (``{trending}``): the ``main`` window's decayed scores (what recommendations
  blend), ranked as readers arrive and rebased when they grow large.

The derived sections see only the events the log section accepted, aggregated per paper in
Lua. On a single Redis every section runs in one call, so a batch is one round trip and is
applied atomically. On a Redis Cluster a script may only touch one hash slot: the log section
runs first on its own, then the user's keys (``_USER_LUA``, which answers the new readers),
then one pipeline updates the other derived keys with one script call per hash slot (the papers
of each slot, ``_PAPERS_LUA``; trending) and the catalogue set's ``ZADD``, sharing the same Lua
functions. The API answers only after every call returned, so an acknowledged event is in the
log; if a process dies between the log call and the last call on a Cluster, the log (the source
of truth for training) is complete and only derived keys miss that batch.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import itertools
import json
import logging
import threading
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from redis.cluster import RedisCluster
from redis.crc import key_slot
from redis.exceptions import RedisError, ResponseError

from recommender import trending, users
from recommender.keys import Keys
from recommender.settings import Settings

log = logging.getLogger(__name__)

KINDS = ("open", "click", "dismiss")
READ_KINDS = ("open", "click")
# A paper's public text is set by its first reader; later readers who send different text
# replace it only when this many distinct readers agree on the new version.
METADATA_QUORUM = 3
# A paper is "rising" when today's reading rate exceeds the week's average rate this much.
RISING_RATIO = 1.5
# Ranking a page view reads the main window's papers this many at a time; another process may
# start ranking it again after this many seconds if the first died.
VIEW_SLICE = 5000
VIEW_LOCK_S = 30
# A page view lists a paper while it has at least this many readers there (decayed).
VIEW_FLOOR = 1e-3
# Carrying an earlier version's views over holds a lock this long at most (see
# EventStore.migrate_legacy_views); a run that dies is resumed after it expires.
MIGRATION_LOCK_S = 600

# Lua shared by the scripts below: commands over many members in slices, the trending update of
# one window, and the catalogue update of one paper. Both scripts that use them are whole
# programs; these are pasted in front.
_SLICES_FN = """
-- commands over many members go in slices (Lua's unpack takes a few thousand values at most),
-- in order, so each leaves what one command over all the members would
local SLICE = 1000
local function zmscore(key, members)
  if #members > 0 and #members <= SLICE then  -- one slice: its answer as it is
    return redis.call('ZMSCORE', key, unpack(members))
  end
  local out = {}
  for s = 1, #members, SLICE do
    local part = redis.call('ZMSCORE', key, unpack(members, s, math.min(s + SLICE - 1, #members)))
    for i = 1, #part do out[s + i - 1] = part[i] end
  end
  return out
end
local function zadd(key, flag, args)  -- args: score, member, score, member, ...
  for s = 1, #args, SLICE do
    local e = math.min(s + SLICE - 1, #args)
    if flag then
      redis.call('ZADD', key, flag, unpack(args, s, e))
    else
      redis.call('ZADD', key, unpack(args, s, e))
    end
  end
end
local function zrem(key, members)
  for s = 1, #members, SLICE do
    redis.call('ZREM', key, unpack(members, s, math.min(s + SLICE - 1, #members)))
  end
end
"""

# account_refuses (recommender.users) checks a batch sent with a token (EventStore.ingest's
# token_hash) in the call that writes it, so no batch lands after an erasure began
_USER_FN = (
    users.ACCOUNT_REFUSES_LUA
    + """
-- a user's stream entries (history, erasure), seen and dismissed papers, within retention:
-- entries holds (time, entry ref) pairs, seen and dismissed (time, paper) pairs, in the events'
-- order (a caller builds them in the one pass it makes over its events); read: the distinct
-- papers the events open or click. Answers, for each of read, whether the user is a new reader
-- of it: the seen set (papers opened or clicked within retention) held it not before this batch
local function user_update(keys, cutoff, entries, seen, dismissed, read)
  for i = 1, 3 do redis.call('ZREMRANGEBYSCORE', keys[i], '-inf', '(' .. cutoff) end
  local before = zmscore(keys[2], read)
  -- one ZADD each; repeated members apply in order, as separate calls would
  zadd(keys[1], nil, entries)
  zadd(keys[2], 'GT', seen)
  zadd(keys[3], nil, dismissed)
  local new = {}
  for q = 1, #read do new[q] = not before[q] end
  return new
end
"""
)

_TRENDING_FN = """
-- the distinct values of a list, in order of first appearance
local function distinct_of(values)
  local out, taken = {}, {}
  for i = 1, #values do
    if not taken[values[i]] then
      taken[values[i]] = true
      out[#out + 1] = values[i]
    end
  end
  return out
end

-- add (sign = 1) or take back (sign = -1) readers (papers[i] first read at times[i]) in one
-- window; distinct: distinct_of(papers), which the windows share. Increments are relative to
-- the window's epoch, rebased when they grow too large
local function trending_update(scores, epoch_key, half, default_epoch, rebase, sign, papers, times,
    distinct)
  local epoch = tonumber(redis.call('GET', epoch_key) or default_epoch)
  local latest = epoch
  for i = 1, #times do
    if times[i] > latest then latest = times[i] end
  end
  if (latest - epoch) / half > rebase then
    local new_epoch = latest - half * 8
    local factor = 2 ^ (-(new_epoch - epoch) / half)
    redis.call('ZUNIONSTORE', scores, 1, scores, 'WEIGHTS', factor)
    redis.call('SET', epoch_key, string.format('%.3f', new_epoch))
    epoch = new_epoch
  end
  if #papers > 0 then
    -- as one ZINCRBY per reader, in order, would: a score that falls to (about) zero leaves
    -- the set and a later increment starts it again from zero; but one read and one write.
    -- A score goes to ZADD as the number itself: Redis turns it into text of the same double
    -- ('%.17g', as string.format would), in C and without a Lua string
    local stored = zmscore(scores, distinct)
    local adds, removes = {}, {}
    if distinct == papers then  -- each paper once (the caller says so): no lookups by name
      for j = 1, #papers do
        local inc = sign * 2 ^ ((times[j] - epoch) / half)
        local s = (tonumber(stored[j]) or 0) + inc
        if s <= 1e-9 * math.abs(inc) then
          removes[#removes + 1] = papers[j]
        else
          adds[#adds + 1] = s
          adds[#adds + 1] = papers[j]
        end
      end
    else
      local score = {}
      for j = 1, #distinct do score[distinct[j]] = tonumber(stored[j]) or false end
      for i = 1, #papers do
        local inc = sign * 2 ^ ((times[i] - epoch) / half)
        local s = (score[papers[i]] or 0) + inc
        if s <= 1e-9 * math.abs(inc) then s = false end
        score[papers[i]] = s
      end
      for _, p in ipairs(distinct) do
        if score[p] then
          adds[#adds + 1] = score[p]
          adds[#adds + 1] = p
        else
          removes[#removes + 1] = p
        end
      end
    end
    zadd(scores, nil, adds)
    zrem(scores, removes)
  end
  -- forget papers whose momentum decayed below a thousandth of a reader
  local floor = 1e-3 * 2 ^ ((latest - epoch) / half)
  redis.call('ZREMRANGEBYSCORE', scores, '-inf', '(' .. string.format('%.17g', floor))
  return epoch
end
"""

_PAPER_FN = """
-- one paper's catalogue entry: first-seen time, counts (opens, clicks, dismisses, new readers:
-- n[c + 1] to n[c + 4]) and the reader's metadata vote. The first reader's metadata wins; a
-- different version replaces it once `quorum` distinct readers sent it (one vote per reader: a
-- changed text moves the vote). The entry is read once and written once (the script is atomic,
-- so this is what HSETNX, HINCRBY and HSET field by field would leave); the votes change by
-- HINCRBY. With a new reader (first read at reader_at, the time as text, else nil), its views
-- change in the same read and write. Answers whether the paper had no first-seen time yet (then
-- it is new to the catalogue set too: every writer of first_seen adds the paper to that set in
-- the same call or pipeline).
local COUNTS = {'opens', 'clicks', 'dismisses', 'readers'}

-- The page's trending views (every trending window after main) of one paper live in its entry:
-- 'tr_at', the time its view scores are decayed to, and one score per view ('tr:<view>'): the
-- decayed number of distinct readers at tr_at. No epoch, no rebase and no order to keep: a
-- reader costs one field each, and the views are ranked when read. views: {{field, half-life},
-- ...}; stored: the entry's tr_at and view fields as HMGET answers them; times: readers' first
-- reads, each added (sign 1) or taken back (-1) in order, weighing amounts[v] in view v if
-- amounts is given (else 1). Answers tr_at and the scores
local function views_add(stored, views, times, sign, amounts)
  local at = tonumber(stored[1])
  local scores = {}
  for v = 1, #views do scores[v] = tonumber(stored[v + 1]) or 0 end
  for i = 1, #times do
    local t = times[i]
    if not at then at = t end
    for v = 1, #views do
      local amount = sign * (amounts and amounts[v] or 1)
      if t > at then  -- decay the score to t, then count the reader whole
        scores[v] = scores[v] * 2 ^ ((at - t) / views[v][2]) + amount
      else  -- an earlier reader: counted as decayed since
        scores[v] = scores[v] + amount * 2 ^ ((t - at) / views[v][2])
      end
      if scores[v] < 1e-9 then scores[v] = 0 end  -- all taken back (up to rounding)
    end
    if t > at then at = t end
  end
  return at, scores
end

-- HMGET's and HSET's arguments, reused by every paper rather than two new tables each: only
-- the first nnames and u values are the current paper's
local names, update = {'first_seen'}, {}
local function paper_update(paper, claims, claimants, user, first_seen, n, c, digest, blob, quorum,
    views, reader_at)
  local meta, replace = nil, false
  if digest ~= '' then
    local previous = redis.call('HGET', claimants, user)
    if previous ~= digest then
      -- the vote moves: digest gains one, previous (if any) loses one (increments as text: a
      -- Lua number would go through Redis's '%.17g'). A digest's JSON is stored with its first
      -- vote (a digest's field is created here, with its JSON, and neither is ever deleted), so
      -- a digest that had a vote already has its JSON
      local votes = redis.call('HINCRBY', claims, digest, '1')
      if votes == 1 then redis.call('HSETNX', claims, 'm:' .. digest, blob) end
      if previous then redis.call('HINCRBY', claims, previous, '-1') end
      redis.call('HSET', claimants, user, digest)
      meta = cjson.decode(blob)
      replace = votes >= quorum
    end
  end
  -- read: first_seen, the counts that change and the metadata fields, then write what changes:
  -- the counts, first_seen and the fields the hash lacks (every field whose value differs, when
  -- the vote replaces the text; the others already hold it)
  local counted = 1
  for i = 1, 4 do
    if n[c + i] ~= 0 then
      counted = counted + 1
      names[counted] = COUNTS[i]
    end
  end
  local nnames = counted
  if meta then
    for name in pairs(meta) do
      nnames = nnames + 1
      names[nnames] = name
    end
  end
  local nmeta = nnames
  if reader_at and #views > 0 then
    names[nnames + 1] = 'tr_at'
    for v = 1, #views do names[nnames + 1 + v] = views[v][1] end
    nnames = nnames + 1 + #views
  end
  local held = redis.call('HMGET', paper, unpack(names, 1, nnames))
  local u = 0
  if not held[1] then
    update[1], update[2], u = 'first_seen', first_seen, 2
  end
  local j = 1
  for i = 1, 4 do
    if n[c + i] ~= 0 then
      j = j + 1
      update[u + 1] = COUNTS[i]
      update[u + 2] = string.format('%d', (tonumber(held[j]) or 0) + n[c + i])
      u = u + 2
    end
  end
  for k = counted + 1, nmeta do
    local value = meta[names[k]]
    if not held[k] or (replace and held[k] ~= value) then
      update[u + 1], update[u + 2], u = names[k], value, u + 2
    end
  end
  if nnames > nmeta then
    -- views_add's arithmetic for this one reader, inline (no tables, no call: it runs for most
    -- events). tr_at moves only forward, and then to the reader's time as the caller wrote it
    local t = tonumber(reader_at)
    local at = tonumber(held[nmeta + 1]) or t
    if t >= at and held[nmeta + 1] ~= reader_at then
      update[u + 1], update[u + 2], u = 'tr_at', reader_at, u + 2
    end
    for v = 1, #views do
      local score = tonumber(held[nmeta + 1 + v]) or 0
      if t > at then  -- decay the score to t, then count the reader whole
        score = score * 2 ^ ((at - t) / views[v][2]) + 1
      else  -- an earlier reader: counted as decayed since
        score = score + 2 ^ ((t - at) / views[v][2])
      end
      if score < 1e-9 then score = 0 end
      update[u + 1], update[u + 2], u = views[v][1], score, u + 2
    end
  end
  if u > 0 then redis.call('HSET', paper, unpack(update, 1, u)) end
  return not held[1]
end
"""

# Fields of one event row in the ingest script's ARGV (see EventStore._rows).
_ROW = 7

_INGEST_LUA = (
    _SLICES_FN
    + _USER_FN
    + _TRENDING_FN
    + _PAPER_FN
    + """
-- One batch of one user's events. ARGV: [1] sections ('A' account check, 'L' log, 'U' user,
-- 'Z' catalogue set, 'T' trending; the papers section runs for the papers listed), [2] user,
-- [3] partition, [4] retention (ms), [5] user keys' cutoff (s), [6] metadata quorum, [7] trending
-- views (the windows after main), [8] default epoch, [9] rebase exponent, [10] papers listed,
-- [11] metadata versions listed, [12] rows, [13] the token's hash ('' without 'A'); then main's
-- half-life, each view's field and half-life (kept in the papers' entries: views_add), the
-- papers listed, the metadata versions (digest and JSON of each, once however many rows carry
-- it), and the rows of 7 values: event id, kind, paper, ts, site, ts capped at the server's
-- clock, metadata digest ('' if none). Answers the number of events accepted (-1: the account
-- check refused the batch, and nothing was written), or with 'L' alone (a Cluster's first call)
-- each row's entry id (or false: a duplicate).
-- KEYS, in section order: A: the user's hash; L: stream, dedupe; U: entries, seen, dismissed;
-- Z: papers; T: main's scores and epoch; then paper, claims, claimants of each paper listed.
local ROW = 7  -- _ROW
local sections, user, partition = ARGV[1], ARGV[2], ARGV[3]
local quorum, nviews = tonumber(ARGV[6]), tonumber(ARGV[7])
local default_epoch, rebase = tonumber(ARGV[8]), tonumber(ARGV[9])
local npapers, nversions, nrows = tonumber(ARGV[10]), tonumber(ARGV[11]), tonumber(ARGV[12])
local half = tonumber(ARGV[14])
local a = 15
local views = {}
for v = 1, nviews do
  views[v] = {ARGV[a], tonumber(ARGV[a + 1])}
  a = a + 2
end
local function has(section) return string.find(sections, section, 1, true) ~= nil end
local k = 1
local log, user_keys, catalogue, trending
if has('A') then
  if account_refuses(KEYS[1], ARGV[13]) then return -1 end
  k = 2
end
if has('L') then
  log = {KEYS[k], KEYS[k + 1]}
  k = k + 2
end
if has('U') then
  user_keys = {KEYS[k], KEYS[k + 1], KEYS[k + 2]}
  k = k + 3
end
if has('Z') then
  catalogue = KEYS[k]
  k = k + 1
end
if has('T') then
  trending = {KEYS[k], KEYS[k + 1]}
  k = k + 2
end
local paper_keys = {}  -- paper -> the index in KEYS of its paper key (claims, claimants follow)
for p = 1, npapers do
  paper_keys[ARGV[a]] = k
  a = a + 1
  k = k + 3
end
local blobs = {}  -- metadata digest -> JSON
for v = 1, nversions do
  blobs[ARGV[a]] = ARGV[a + 1]
  a = a + 2
end

-- log: each event once (by id, per user); arrival times come from the server's clock, as the
-- stream's entry ids do. One read of the batch's de-duplication marks, one write of the new
-- ones (a mark repeated within the batch counts once). The same pass over the rows gathers what
-- the derived sections write for the events it accepts: the user's ZADD arguments and, per
-- paper in order of first appearance, 7 values from grouped[b + 1] (b = position[paper]): the
-- paper, its earliest time, the digest of the batch's last metadata version ('' if none) and
-- its counts (opens, clicks, dismisses, new readers).
local out = {}
local answer_rows = sections == 'L'
local accepted = 0
local entries, seen, dismissed, nseen, ndismissed = {}, {}, {}, 0, 0
local per_paper = npapers > 0 or catalogue ~= nil
local grouped, position, ngrouped = {}, {}, 0
local readers, reader_times = {}, {}  -- the new readers (papers, first-read times), in order
local reader_at = {}  -- paper -> its new reader's first-read time (as ARGV has it)
-- the papers the accepted events open or click, in order; paper -> row of its first such event
local read_papers, first_read = {}, {}
if log then
  local time = redis.call('TIME')
  local now = time[1] * 1000 + math.floor(time[2] / 1000)
  -- the marks' score as Redis would write the number (%.17g), once rather than per mark
  local now_arg = string.format('%.17g', now)
  local marks, prefix = {}, 'e:' .. user .. ':'
  for j = 1, nrows do marks[j] = prefix .. ARGV[a + (j - 1) * ROW] end
  local known = zmscore(log[2], marks)
  local taken, new_marks = {}, {}
  for j = 1, nrows do
    local mark = marks[j]
    if known[j] or taken[mark] then
      if answer_rows then out[j] = false end
    else
      taken[mark] = true
      new_marks[2 * accepted + 1] = now_arg
      new_marks[2 * accepted + 2] = mark
      accepted = accepted + 1
      local i = a + (j - 1) * ROW
      local kind, p, ts = ARGV[i + 1], ARGV[i + 2], ARGV[i + 5]
      local id = redis.call('XADD', log[1], '*', 'u', user, 'e', ARGV[i], 'k', kind, 'p', p,
        'ts', ARGV[i + 3], 's', ARGV[i + 4])
      if answer_rows then out[j] = id end
      if user_keys then
        entries[2 * accepted - 1] = ts
        entries[2 * accepted] = partition .. '/' .. id
        if kind == 'dismiss' then
          dismissed[ndismissed + 1] = ts
          dismissed[ndismissed + 2] = p
          ndismissed = ndismissed + 2
        else
          seen[nseen + 1] = ts
          seen[nseen + 2] = p
          nseen = nseen + 2
        end
      end
      if per_paper then
        local b = position[p]
        if not b then
          b = ngrouped
          ngrouped = ngrouped + 7
          position[p] = b
          grouped[b + 1] = p
          grouped[b + 2] = ts
          grouped[b + 3] = ''
          for c = b + 4, b + 7 do grouped[c] = 0 end
        elseif ts ~= grouped[b + 2] and tonumber(ts) < tonumber(grouped[b + 2]) then
          grouped[b + 2] = ts
        end
        local c = b + 6
        if kind == 'open' then c = b + 4 elseif kind == 'click' then c = b + 5 end
        grouped[c] = grouped[c] + 1
        if ARGV[i + 6] ~= '' then grouped[b + 3] = ARGV[i + 6] end
      end
      -- READ_KINDS; the user section asks which are new reads (a Cluster's log call has none)
      if user_keys and (kind == 'open' or kind == 'click') and first_read[p] == nil then
        first_read[p] = j
        read_papers[#read_papers + 1] = p
      end
    end
  end
  zadd(log[2], 'NX', new_marks)
  -- retention: drop log entries and de-duplication marks older than the window
  local cutoff = now - tonumber(ARGV[4])
  redis.call('XTRIM', log[1], 'MINID', cutoff)
  redis.call('ZREMRANGEBYSCORE', log[2], '-inf', '(' .. cutoff)
end

-- user: stream entries (history, erasure), seen and dismissed papers, within retention; and
-- the distinct readers: the first accepted open or click of a paper the user had not read
if user_keys and accepted > 0 then
  local new = user_update(user_keys, ARGV[5], entries, seen, dismissed, read_papers)
  for q = 1, #read_papers do
    if new[q] then
      local p = read_papers[q]
      if per_paper then
        local b = position[p]
        grouped[b + 7] = grouped[b + 7] + 1
      end
      readers[#readers + 1] = p
      reader_at[p] = ARGV[a + (first_read[p] - 1) * ROW + 5]
      reader_times[#readers] = tonumber(reader_at[p])
    end
  end
end

-- papers, and the catalogue set: a paper whose entry already had its first-seen time is in
-- the set already (ZADD NX would leave it), so only the others are added
local added = {}
for b = 0, ngrouped - 7, 7 do
  local p = grouped[b + 1]
  local kp = paper_keys[p]
  local new = true
  if kp then
    local digest = grouped[b + 3]
    new = paper_update(KEYS[kp], KEYS[kp + 1], KEYS[kp + 2], user, grouped[b + 2], grouped, b + 3,
      digest, blobs[digest] or '', quorum, views, reader_at[p])
  end
  if new then
    added[#added + 1] = grouped[b + 2]
    added[#added + 1] = p
  end
end
if catalogue then zadd(catalogue, 'NX', added) end

-- trending: each new reader in the main window (a paper has at most one new reader in a batch,
-- its first accepted read, so the papers are distinct); the views changed with the papers
if trending and #readers > 0 then
  trending_update(trending[1], trending[2], half, default_epoch, rebase, 1, readers, reader_times,
    readers)
end
-- the log section alone (a Cluster's first call) answers each row's entry id (false for a
-- duplicate), for the calls that derive from it; otherwise the number of events accepted
if answer_rows then return out end
return accepted
"""
)

_TRENDING_LUA = (
    _SLICES_FN
    + _TRENDING_FN
    + """
-- KEYS: main's scores and epoch; ARGV[1] default epoch, [2] rebase exponent, [3] sign (+1 add,
-- -1 take back), [4] half-life (s), then (paper, ts) pairs. Returns the epoch.
local papers, times = {}, {}
for i = 5, #ARGV, 2 do
  papers[#papers + 1] = ARGV[i]
  times[#times + 1] = tonumber(ARGV[i + 1])
end
local epoch = trending_update(KEYS[1], KEYS[2], tonumber(ARGV[4]), tonumber(ARGV[1]),
  tonumber(ARGV[2]), tonumber(ARGV[3]), papers, times, distinct_of(papers))
return tostring(epoch)
"""
)

_VIEWS_LUA = (
    _PAPER_FN
    + """
-- One paper's trending views (views_add) outside ingestion: erasure takes readers back, a demo
-- catalogue adds some, an upgrade carries earlier versions' scores over. KEYS[1] the paper's
-- entry; ARGV[1] sign, [2] views, then each view's field, half-life and amount (what a reader
-- weighs in it), then the readers' first-read times.
local sign, nviews = tonumber(ARGV[1]), tonumber(ARGV[2])
local views, names, amounts, times = {}, {'tr_at'}, {}, {}
for v = 1, nviews do
  views[v] = {ARGV[3 * v], tonumber(ARGV[3 * v + 1])}
  amounts[v] = tonumber(ARGV[3 * v + 2])
  names[v + 1] = views[v][1]
end
for i = 3 + 3 * nviews, #ARGV do times[#times + 1] = tonumber(ARGV[i]) end
local at, scores = views_add(redis.call('HMGET', KEYS[1], unpack(names)), views, times, sign,
  amounts)
local update = {'tr_at', at}
for v = 1, nviews do
  update[#update + 1] = views[v][1]
  update[#update + 1] = scores[v]
end
redis.call('HSET', KEYS[1], unpack(update))
return 0
"""
)

_USER_LUA = (
    _SLICES_FN
    + _USER_FN
    + """
-- On a Cluster: a user's keys for the events the log's call accepted. KEYS: entries, seen,
-- dismissed, and the user's hash with a token's hash; ARGV[1] cutoff (s), [2] the token's hash
-- ('' for no account check), then (entry ref, kind, paper, ts) of each event. Answers the
-- papers the user is a new reader of, in order of their first open or click in the batch, or
-- -1 when the account check refused the batch (nothing written).
if ARGV[2] ~= '' and account_refuses(KEYS[4], ARGV[2]) then return -1 end
local entries, seen, dismissed, read, taken = {}, {}, {}, {}, {}
for i = 3, #ARGV, 4 do
  local ts, paper = ARGV[i + 3], ARGV[i + 2]
  entries[#entries + 1] = ts
  entries[#entries + 1] = ARGV[i]
  local into = seen
  if ARGV[i + 1] == 'dismiss' then
    into = dismissed
  elseif not taken[paper] then  -- READ_KINDS
    taken[paper] = true
    read[#read + 1] = paper
  end
  into[#into + 1] = ts
  into[#into + 1] = paper
end
local new = user_update(KEYS, ARGV[1], entries, seen, dismissed, read)
local out = {}
for q = 1, #read do
  if new[q] then out[#out + 1] = read[q] end
end
return out
"""
)

_PAPERS_LUA = (
    _PAPER_FN
    + """
-- On a Cluster: the catalogue entries of papers that share one hash slot, for the events the
-- log's call accepted (aggregated by EventStore._derive_by_slot as _INGEST_LUA does). ARGV:
-- [1] user, [2] metadata quorum, [3] trending views, then each view's field and half-life, then
-- 8 values per paper: first-seen time, opens, clicks, dismisses, new readers, metadata digest
-- and JSON ('' if none), the new reader's first-read time ('' if none). KEYS: paper, claims,
-- claimants of each paper.
local user, quorum, nviews = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local views = {}
for v = 1, nviews do views[v] = {ARGV[2 + 2 * v], tonumber(ARGV[3 + 2 * v])} end
for p = 0, #KEYS / 3 - 1 do
  local i = 4 + 2 * nviews + p * 8
  local n = {tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]),
    tonumber(ARGV[i + 4])}
  paper_update(KEYS[3 * p + 1], KEYS[3 * p + 2], KEYS[3 * p + 3], user, ARGV[i], n, 0,
    ARGV[i + 5], ARGV[i + 6], quorum, views, ARGV[i + 7] ~= '' and ARGV[i + 7] or nil)
end
return 0
"""
)


def _minified(script: str) -> str:
    """``script`` without its comment lines and indentation: a Cluster pipeline sends a script's
    whole text with every call (it refuses EVALSHA), and Redis hashes it each time."""
    lines = (line.strip() for line in script.splitlines())
    return "\n".join(line for line in lines if line and not line.startswith("--"))


_SWAP_VIEW_LUA = """
-- KEYS[1] a view's new ranking (absent if empty), [2] the view, [3] its time; ARGV[1] the time:
-- a reader sees the old ranking or the new, with its own time
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('RENAME', KEYS[1], KEYS[2])
  redis.call('PERSIST', KEYS[2])  -- the ranking being built had an expiry
else
  redis.call('DEL', KEYS[2])
end
redis.call('SET', KEYS[3], ARGV[1])
return 0
"""

_UNCLAIM_LUA = """
-- KEYS[2] claims, KEYS[3] claimants; ARGV[1] user: take the reader's vote back
local previous = redis.call('HGET', KEYS[3], ARGV[1])
if previous then
  redis.call('HINCRBY', KEYS[2], previous, -1)
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return 0
"""


class Event(NamedTuple):
    """One validated event, its paper already canonical.

    A named tuple rather than a frozen dataclass: the API builds one per event it accepts, and
    a frozen dataclass's ``__init__`` (one ``object.__setattr__`` per field) cost 2.3 µs per
    event; a named tuple costs 0.9 and is as immutable.
    """

    id: str
    kind: str
    paper_id: str
    ts: int
    site: str
    title: str | None = None
    url: str | None = None
    abstract: str | None = None
    authors: tuple[str, ...] = ()

    def metadata(self) -> dict[str, str]:
        """The public metadata this event carries, as catalogue fields.

        The catalogue's ``url`` is rebuilt from the canonical id, never the address the reader
        was at, so no page URL of anyone's browsing is stored.
        """
        return _metadata(self.paper_id, self.title, self.abstract, self.authors)


# json.dumps builds a new encoder per call when given options; these are built once (the text
# is the same: json.dumps(value, **options) is JSONEncoder(**options).encode(value))
_AUTHORS_JSON = json.JSONEncoder(ensure_ascii=False)
_VERSION_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)


def _metadata(
    paper_id: str, title: str | None, abstract: str | None, authors: tuple[str, ...]
) -> dict[str, str]:
    fields = {"title": title, "url": paper_url(paper_id), "abstract": abstract}
    out = {k: v for k, v in fields.items() if v}
    if authors:
        out["authors"] = _AUTHORS_JSON.encode(list(authors))
    return out


# Bounded: an entry holds an event's text twice (key and JSON), at most ~20 KB with a
# 10,000-character abstract, so at most ~80 MB per process and a few MB for typical papers.
@functools.lru_cache(maxsize=4096)
def _claim(
    paper_id: str, title: str | None, abstract: str | None, authors: tuple[str, ...]
) -> tuple[str, str]:
    """An event's metadata vote: ``(digest, JSON)`` of :meth:`Event.metadata`, ``("", "")`` if
    it carries none. Cached: hot papers arrive with the same text over and over."""
    meta = _metadata(paper_id, title, abstract, authors)
    if not meta:
        return "", ""
    blob = _VERSION_JSON.encode(meta)
    return hashlib.sha256(blob.encode()).hexdigest()[:32], blob


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    duplicates: int


class TokenRefused(Exception):
    """:meth:`EventStore.ingest` with a ``token_hash``: the user's account does not hold that
    token (wrong, revoked or erased) or its erasure has begun; nothing of the batch is stored."""


class EventStore:
    """Reads and writes Paperfeed's events and what is derived from them.

    Parameters
    ----------
    redis : redis.Redis or redis.cluster.RedisCluster
        A client with ``decode_responses=True``.
    settings : Settings
    """

    def __init__(self, redis: Any, settings: Settings, keys: Keys | None = None) -> None:
        self.redis = redis
        self.settings = settings
        self.keys = keys or Keys(settings.key_prefix, settings.stream_partitions)
        self._cluster = isinstance(redis, RedisCluster)
        self._ingest = redis.register_script(_minified(_INGEST_LUA))
        self._user = redis.register_script(_minified(_USER_LUA))
        self._papers = redis.register_script(_minified(_PAPERS_LUA))
        self._trending = redis.register_script(_minified(_TRENDING_LUA))
        self._views_script = redis.register_script(_minified(_VIEWS_LUA))
        self._swap_view = redis.register_script(_SWAP_VIEW_LUA)
        self._unclaim = redis.register_script(_UNCLAIM_LUA)
        self.last_rerank: threading.Thread | None = None  # the latest background ranking

    def _script(self, script: Any, keys: list[str], args: list[Any], pipe: Any) -> None:
        """Queue ``script`` on ``pipe``; a Cluster pipeline refuses EVALSHA, so it gets EVAL."""
        if self._cluster:
            pipe.execute_command("EVAL", script.script, len(keys), *keys, *args)
        else:
            script(keys=keys, args=args, client=pipe)

    # -- writing ------------------------------------------------------------------------
    def ingest(
        self,
        user_id: str,
        events: Sequence[Event],
        now: float | None = None,
        *,
        token_hash: str | None = None,
    ) -> IngestResult:
        """Append ``events`` of ``user_id`` to the log once each and update derived keys.

        One script call on a single Redis; on a Cluster, the log's call and then one pipeline
        with a call per hash slot of the derived keys (see the module's docstring).

        With ``token_hash`` (:func:`recommender.users.hash_token` of the caller's token: what the
        API passes), the batch is stored only if the user's account holds that token and its
        erasure has not begun, else :class:`TokenRefused` is raised and nothing is stored. The
        check runs in the call that writes, so it also authenticates the request (no look-up
        before it) and no batch lands after :meth:`erase` began. On a Cluster the log's call
        cannot see the account (another hash slot): the account is read before it and checked
        again in the user's call, and a batch that check refuses is taken out of the log again.
        """
        if not events:
            if token_hash is not None:
                self._check_token(user_id, token_hash)
            return IngestResult(0, 0)
        now = time.time() if now is None else now
        k = self.keys
        partition = k.partition_of(user_id)
        rows, versions = self._rows(events, int(now))
        log_keys = [k.stream(partition), k.dedupe(partition)]
        if not self._cluster:
            papers = list(dict.fromkeys(ev.paper_id for ev in events))
            keys = log_keys + self._derived_keys(user_id, "UZT", papers)
            sections = "LUZT"
            if token_hash is not None:
                keys.insert(0, k.user(user_id))
                sections = "ALUZT"
            args = self._header(
                sections, user_id, partition, now, papers, versions, len(events), token_hash
            )
            accepted = self._ingest(keys=keys, args=args + rows)
            if accepted < 0:
                raise TokenRefused(user_id)
            return IngestResult(accepted, len(events) - accepted)
        if token_hash is not None:
            self._check_token(user_id, token_hash)
        header = self._header("L", user_id, partition, now, [], {}, len(events))
        results = self._ingest(keys=log_keys, args=header + rows)
        try:
            self._derive_by_slot(user_id, partition, rows, versions, results, now, token_hash)
        except TokenRefused:
            self._take_out_of_log(user_id, partition, rows, results)
            raise
        accepted = sum(1 for res in results if res)
        return IngestResult(accepted, len(events) - accepted)

    def _check_token(self, user_id: str, token_hash: str) -> None:
        """Raise :class:`TokenRefused` unless the user's account holds ``token_hash`` and its
        erasure has not begun (the ingest scripts' ``account_refuses``, from the client)."""
        if not users.active(self.redis, self.keys, user_id, token_hash):
            raise TokenRefused(user_id)

    def _take_out_of_log(
        self, user_id: str, partition: int, rows: list[Any], results: Sequence[Any]
    ) -> None:
        """On a Cluster: remove the entries and de-duplication marks that the log's call
        (``results``) added for a batch the account check then refused."""
        entry_ids = [entry_id for entry_id in results if entry_id]
        if not entry_ids:
            return
        marks = [f"e:{user_id}:{rows[j * _ROW]}" for j, entry_id in enumerate(results) if entry_id]
        pipe = self.redis.pipeline(transaction=False)
        pipe.xdel(self.keys.stream(partition), *entry_ids)
        pipe.zrem(self.keys.dedupe(partition), *marks)
        pipe.execute()

    def _rows(self, events: Sequence[Event], now_s: int) -> tuple[list[Any], dict[str, str]]:
        """The ingest script's rows for ``events`` (``_ROW`` values each), and the metadata
        versions they name by digest (digest -> JSON): each JSON travels once per batch."""
        rows: list[Any] = []
        versions: dict[str, str] = {}
        for ev in events:
            digest, blob = _claim(ev.paper_id, ev.title, ev.abstract, ev.authors)
            if digest:
                versions[digest] = blob
            rows += (ev.id, ev.kind, ev.paper_id, ev.ts, ev.site, min(ev.ts, now_s), digest)
        return rows, versions

    def _header(
        self,
        sections: str,
        user_id: str,
        partition: int,
        now: float,
        papers: list[str],
        versions: Mapping[str, str],
        n: int,
        token_hash: str | None = None,
    ) -> list[Any]:
        """The ingest script's ARGV before its rows (layout in ``_INGEST_LUA``)."""
        s = self.settings
        views = self._view_args()
        return [
            sections,
            user_id,
            partition,
            int(s.retention_s * 1000),
            int(now - s.retention_s),
            METADATA_QUORUM,
            len(views) // 2,
            trending.DEFAULT_EPOCH,
            trending.REBASE_EXPONENT,
            len(papers),
            len(versions),
            n,
            token_hash or "",
            s.trending_half_life_s,
            *views,
            *papers,
            *(value for version in versions.items() for value in version),
        ]

    def _derived_keys(self, user_id: str, sections: str, papers: Iterable[str]) -> list[str]:
        """KEYS of the derived ``sections`` ('U', 'Z', 'T') and of ``papers``, in script order."""
        k = self.keys
        keys: list[str] = []
        if "U" in sections:
            keys += [k.user_entries(user_id), k.user_seen(user_id), k.user_dismissed(user_id)]
        if "Z" in sections:
            keys.append(k.papers())
        if "T" in sections:
            keys += [k.trending(), k.trending_epoch()]
        for pid in papers:
            keys += [k.paper(pid), k.paper_claims(pid), k.paper_claimants(pid)]
        return keys

    def _derive_by_slot(
        self,
        user_id: str,
        partition: int,
        rows: list[Any],
        versions: Mapping[str, str],
        results: Sequence[Any],
        now: float,
        token_hash: str | None = None,
    ) -> None:
        """On a Cluster: the derived keys of the events the log's call accepted (``results``:
        each row's entry id, or ``False`` for a duplicate): what the ingest script's sections do
        on a single Redis. First the user's script, which checks the account (``token_hash``:
        raises :class:`TokenRefused`) and answers the papers the user is a new reader of; then
        one pipeline with one script call per hash slot of the papers, the catalogue set's ZADD
        and the trending script."""
        k = self.keys
        user_args: list[Any] = [int(now - self.settings.retention_s), token_hash or ""]
        per_paper: dict[str, list[Any]] = {}  # as _INGEST_LUA aggregates them
        first_read: dict[str, int] = {}  # paper -> time of its first accepted open or click
        for j, entry_id in enumerate(results):
            if not entry_id:
                continue
            row = rows[j * _ROW : (j + 1) * _ROW]
            kind, paper_id, ts = row[1], row[2], row[5]
            user_args += [f"{partition}/{entry_id}", kind, paper_id, ts]
            paper = per_paper.get(paper_id)
            if paper is None:
                paper = per_paper[paper_id] = [ts, 0, 0, 0, 0, "", "", ""]
            elif ts < paper[0]:
                paper[0] = ts
            paper[1 + KINDS.index(kind)] += 1
            if row[6]:  # the batch's last version of the paper's text counts
                paper[5], paper[6] = row[6], versions[row[6]]
            if kind in READ_KINDS:
                first_read.setdefault(paper_id, ts)
        if not per_paper:
            return
        user_keys = [*self._derived_keys(user_id, "U", []), k.user(user_id)]
        new_readers = self._user(keys=user_keys, args=user_args)
        if new_readers == -1:
            raise TokenRefused(user_id)
        for paper_id in new_readers:
            per_paper[paper_id][4] += 1
            per_paper[paper_id][7] = first_read[paper_id]
        pipe = self.redis.pipeline(transaction=False)
        by_slot: dict[int, list[str]] = {}
        for paper_id in per_paper:
            by_slot.setdefault(key_slot(k.paper(paper_id).encode()), []).append(paper_id)
        views = self._view_args()
        for papers in by_slot.values():
            args = [user_id, METADATA_QUORUM, len(views) // 2, *views]
            for paper_id in papers:
                args += per_paper[paper_id]
            self._script(self._papers, self._derived_keys(user_id, "", papers), args, pipe)
        pipe.zadd(k.papers(), {pid: paper[0] for pid, paper in per_paper.items()}, nx=True)
        if new_readers:
            readers = [(pid, first_read[pid]) for pid in new_readers]
            self.queue_readers(pipe, readers, sign=1, views=False)  # the papers' calls did those
        pipe.execute()

    def _views(self) -> dict[str, float]:
        """The page's trending views (every window after main): name -> half-life (s)."""
        _, *views = self.settings.trending_windows.items()
        return dict(views)

    def _view_args(self) -> list[Any]:
        """The scripts' view arguments: each view's field in a paper's entry and half-life."""
        views = self._views().items()
        return [value for name, half in views for value in (_view_field(name), half)]

    def queue_readers(
        self, pipe: Any, readers: Iterable[tuple[str, int]], sign: int, views: bool = True
    ) -> None:
        """Queue on ``pipe``: add (or, with ``sign=-1``, take back) ``(paper, first-read time)``
        readers in the main trending window (one script call) and in the page's views (one per
        paper, unless ``views`` is false: they live in its entry). Erasure and a demo catalogue
        use this; a Cluster's ingestion uses it for the main window only."""
        s = self.settings
        args: list[Any] = [trending.DEFAULT_EPOCH, trending.REBASE_EXPONENT, sign]
        args.append(s.trending_half_life_s)
        times: dict[str, list[int]] = {}
        for paper_id, ts in readers:
            args += [paper_id, ts]
            times.setdefault(paper_id, []).append(ts)
        self._script(self._trending, self._derived_keys("", "T", []), args, pipe)
        if views and self._views():
            for paper_id, paper_times in times.items():
                self._queue_views(pipe, paper_id, sign, {}, paper_times)

    def _queue_views(
        self,
        pipe: Any,
        paper_id: str,
        sign: int,
        amounts: Mapping[str, float],
        times: Sequence[float],
    ) -> None:
        """Queue on ``pipe``: readers at ``times`` into a paper's page views, each weighing
        ``amounts[view]`` (default 1) in a view, added (``sign=1``) or taken back (-1)."""
        views = self._views()
        args: list[Any] = [sign, len(views)]
        for name, half in views.items():
            args += [_view_field(name), half, amounts.get(name, 1.0)]
        self._script(self._views_script, [self.keys.paper(paper_id)], args + list(times), pipe)

    def _queue_views_stale(self, pipe: Any) -> None:
        """Queue on ``pipe``: mark the page views' rankings stale (where there are any), so the
        next read has them ranked again in the background."""
        for window in self._views():
            pipe.set(self.keys.trending_view_at(window), 0, xx=True)

    def migrate_legacy_views(self, now: float | None = None) -> int:
        """Carry the page views of versions before 2026-11-28 (a sorted set per view) into the
        papers' entries, once: each paper's score there, decayed to ``now``, is added as readers
        at ``now`` would be, and the sets are deleted. One process at a time (a lock; another
        process returns 0 at once); a run that dies is resumed by the next (papers leave the
        claimed set as they are carried, so at most one slice of them is carried twice).
        Returns the number of papers carried: 0 when there is nothing to carry."""
        now = time.time() if now is None else now
        k = self.keys
        views = self._views()
        legacy = [k.legacy_trending_view(w)[0] for w in views]
        if not self.redis.exists(*legacy, *(k.legacy_trending_view_claimed(w) for w in views)):
            return 0  # the usual case: one round trip
        lock = k.legacy_trending_views_lock()
        if not self.redis.set(lock, "1", nx=True, ex=MIGRATION_LOCK_S):
            return 0
        carried = 0
        try:
            for window, half in views.items():
                scores, epoch_key = k.legacy_trending_view(window)
                claimed = k.legacy_trending_view_claimed(window)
                with contextlib.suppress(ResponseError):  # no such key: none, or claimed before
                    self.redis.rename(scores, claimed)
                epoch = trending.stored_epoch(self.redis.get(epoch_key))
                factor = trending.decay(now, epoch, half)
                while rows := self.redis.zrange(claimed, 0, VIEW_SLICE - 1, withscores=True):
                    pipe = self.redis.pipeline(transaction=False)
                    for paper_id, score in rows:  # the other views: nothing added, only decayed
                        amounts = {name: 0.0 for name in views} | {window: score * factor}
                        self._queue_views(pipe, paper_id, 1, amounts, [now])
                    pipe.zrem(claimed, *(paper_id for paper_id, _ in rows))
                    pipe.execute()
                    carried += len(rows)
                self.redis.delete(claimed, epoch_key)
            pipe = self.redis.pipeline(transaction=False)
            self._queue_views_stale(pipe)
            pipe.execute()
        finally:
            self.redis.delete(lock)
        return carried

    def trim(self, now: float | None = None) -> int:
        """Drop log entries and de-duplication marks older than the retention window."""
        now = time.time() if now is None else now
        cutoff_ms = int((now - self.settings.retention_s) * 1000)
        removed = 0
        for p in range(self.keys.partitions):
            removed += self.redis.xtrim(self.keys.stream(p), minid=cutoff_ms, approximate=False)
            self.redis.zremrangebyscore(self.keys.dedupe(p), "-inf", cutoff_ms)
        return removed

    # -- reading ------------------------------------------------------------------------
    def _raw_papers(self, paper_ids: Sequence[str], title_ids: Sequence[str] = ()) -> list[Any]:
        """The catalogue hashes of ``paper_ids`` as stored (empty where unknown), then the
        stored title (or ``None``) of each of ``title_ids``, in one round trip."""
        if not paper_ids and not title_ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for pid in paper_ids:
            pipe.hgetall(self.keys.paper(pid))
        for pid in title_ids:
            pipe.hget(self.keys.paper(pid), "title")
        return pipe.execute()

    def papers(self, paper_ids: Sequence[str]) -> list[dict[str, Any] | None]:
        """Catalogue entries for ``paper_ids`` (``None`` where unknown), in one round trip."""
        return self.papers_and_titles(paper_ids, ())[0]

    def papers_and_titles(
        self, paper_ids: Sequence[str], title_ids: Sequence[str]
    ) -> tuple[list[dict[str, Any] | None], dict[str, str]]:
        """Catalogue entries for ``paper_ids`` (``None`` where unknown) and the titles of
        ``title_ids`` (papers only named, as in a reason; those without one are left out), in
        one round trip."""
        replies = self._raw_papers(paper_ids, title_ids)
        entries = [
            _paper_view(pid, raw) if raw else None
            for pid, raw in zip(paper_ids, replies[: len(paper_ids)], strict=True)
        ]
        titles = zip(title_ids, replies[len(paper_ids) :], strict=True)
        return entries, {pid: title for pid, title in titles if title}

    def paper(self, paper_id: str) -> dict[str, Any] | None:
        return self.papers([paper_id])[0]

    def trending(
        self, offset: int, limit: int, now: float | None = None, window: str = "main"
    ) -> tuple[list[dict[str, Any]], int]:
        """Global trending in ``window``, most momentum first, and how many papers it holds.

        Each item: ``{"paper": catalogue entry, "score": decayed readers now, "rising": bool}``.
        A paper is rising when readers arrive faster now (its "today" intensity) than on
        average over the week, by ``RISING_RATIO``. ``main`` is ranked as every reader arrives;
        a page view (``day``, ``week``) by a ranking about ``trending_view_ttl_s`` old at most,
        its papers' scores read from their entries as of ``now`` (a paper whose readers were all
        taken back since the ranking is left out).
        """
        now = time.time() if now is None else now
        if window in self._views():
            # the ranking gives the order; the scores are the entries' own, as of now
            rows, total = self._view(window, offset, limit, now)
            scores = None
        else:
            k = self.keys
            pipe = self.redis.pipeline(transaction=False)
            pipe.zrevrange(k.trending(), offset, offset + limit - 1, withscores=True)
            pipe.zcard(k.trending())
            pipe.get(k.trending_epoch())
            rows, total, epoch = pipe.execute()
            epoch = trending.stored_epoch(epoch)
            half_life = self.settings.trending_half_life_s
            raw_scores = [score for _, score in rows]
            scores = [float(x) for x in trending.to_now(raw_scores, now, epoch, half_life)]
        ids = [pid for pid, _ in rows]
        raws = self._raw_papers(ids)
        views = [self._view_scores(raw, now) for raw in raws]
        if scores is None:
            scores = [view.get(window, 0.0) for view in views]
        items = [
            {
                "paper": _paper_view(pid, raw) if raw else {"id": pid},
                "score": float(score),
                "rising": self._rising(view),
            }
            for pid, raw, view, score in zip(ids, raws, views, scores, strict=True)
            if score >= VIEW_FLOOR  # all its readers taken back since the ranking
        ]
        return items, int(total)

    def _view_scores(self, raw: Mapping[str, str], now: float) -> dict[str, float]:
        """A paper's page-view scores (its entry's fields), decayed to ``now``: view -> readers."""
        at = raw.get("tr_at")
        if not at:
            return {}
        return {
            name: float(raw.get(_view_field(name)) or 0.0) * trending.decay(now, float(at), half)
            for name, half in self._views().items()
        }

    def _rising(self, views: Mapping[str, float]) -> bool:
        """Whether a paper's readers arrive faster today than on average this week, from its
        :meth:`_view_scores`."""
        if "day" not in views or "week" not in views:
            return False
        windows = self.settings.trending_windows
        day_rate = views["day"] / windows["day"]  # readers per second now (up to ln 2)
        week_rate = views["week"] / windows["week"]
        return views["day"] >= 1.0 and day_rate > RISING_RATIO * week_rate

    def _view(
        self, window: str, offset: int, limit: int, now: float
    ) -> tuple[list[tuple[str, float]], int]:
        """A page of a view's ranking and its length.

        A missing ranking is ranked at once (by every reader who finds none). A ranking older
        than ``trending_view_ttl_s`` is served as it is while one process, the one that takes
        the lock, ranks it again in a background thread: no reader waits for a re-ranking.
        """
        k = self.keys

        def read() -> list[Any]:
            pipe = self.redis.pipeline(transaction=False)
            pipe.get(k.trending_view_at(window))
            pipe.zrevrange(k.trending_view(window), offset, offset + limit - 1, withscores=True)
            pipe.zcard(k.trending_view(window))
            return pipe.execute()

        ranked_at, rows, total = read()
        if ranked_at is None:
            self.rank_view(window, now)
            ranked_at, rows, total = read()
        elif now - float(ranked_at) > self.settings.trending_view_ttl_s:
            self._rerank_in_background(window, now)
        return rows, int(total)

    def _rerank_in_background(self, window: str, now: float) -> threading.Thread | None:
        """Rank ``window`` again in a thread of this process if no process is at it (the lock,
        which expires should this one die); the thread, or None."""
        lock = self.keys.trending_view_lock(window)
        if not self.redis.set(lock, "1", nx=True, ex=VIEW_LOCK_S):
            return None

        def rank() -> None:
            try:
                self.rank_view(window, now)
            except Exception:  # a background thread has nobody to raise to
                log.exception("ranking the %s trending view failed", window)
            finally:
                with contextlib.suppress(RedisError):  # else it expires
                    self.redis.delete(lock)

        thread = threading.Thread(target=rank, name=f"rank-{window}", daemon=True)
        thread.start()
        self.last_rerank = thread
        return thread

    def rank_view(self, window: str, now: float | None = None) -> int:
        """Rank a page view from the papers' entries now: every paper in the main window (read
        within about ten of its half-lives) with a thousandth of a reader or more in the view.
        Reads the papers in slices of ``VIEW_SLICE`` and swaps the ranking in whole. Returns its
        length."""
        now = time.time() if now is None else now
        k = self.keys
        half = self.settings.trending_windows[window]
        field = _view_field(window)
        building = k.trending_view_building(window, uuid.uuid4().hex)
        ranked = 0
        # ZSCAN returns every paper the window holds throughout at least once, however the
        # window changes meanwhile (a paper returned twice is written twice, the same)
        members = (pid for pid, _ in self.redis.zscan_iter(k.trending(), count=VIEW_SLICE))
        while papers := list(itertools.islice(members, VIEW_SLICE)):
            pipe = self.redis.pipeline(transaction=False)
            for pid in papers:
                pipe.hmget(k.paper(pid), "tr_at", field)
            scores = {}
            for pid, (at, score) in zip(papers, pipe.execute(), strict=True):
                if at and score:
                    value = float(score) * trending.decay(now, float(at), half)
                    if value >= VIEW_FLOOR:
                        scores[pid] = value
            if scores:
                pipe = self.redis.pipeline(transaction=False)
                pipe.zadd(building, scores)
                pipe.expire(building, VIEW_LOCK_S * 4)  # gone if this process dies meanwhile
                pipe.execute()
                ranked += len(scores)
        self._swap_view(
            keys=[building, k.trending_view(window), k.trending_view_at(window)], args=[repr(now)]
        )
        return ranked

    def user_events(self, user_id: str, limit: int | None = None) -> list[dict[str, Any]]:
        """The user's events from the log, newest first (all of them when ``limit`` is None)."""
        end = -1 if limit is None else limit - 1
        refs = self.redis.zrevrange(self.keys.user_entries(user_id), 0, end)
        pipe = self.redis.pipeline(transaction=False)
        for ref in refs:
            partition, entry_id = ref.split("/", 1)
            pipe.xrange(self.keys.stream(int(partition)), entry_id, entry_id)
        events = []
        for ref, found in zip(refs, pipe.execute() if refs else [], strict=True):
            for entry_id, fields in found:
                events.append(_event_view(int(ref.split("/", 1)[0]), entry_id, fields))
        return events

    def history(self, user_id: str, limit: int) -> list[dict[str, Any]]:
        """The user's latest events with each paper's id and title."""
        events = self.user_events(user_id, limit)
        papers = self.papers([ev["paper"]["id"] for ev in events])
        for ev, paper in zip(events, papers, strict=True):
            if paper and paper.get("title"):
                ev["paper"]["title"] = paper["title"]
        return events

    def seen_and_dismissed(self, user_id: str) -> tuple[dict[str, float], dict[str, float]]:
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrange(self.keys.user_seen(user_id), 0, -1, withscores=True)
        pipe.zrange(self.keys.user_dismissed(user_id), 0, -1, withscores=True)
        seen, dismissed = pipe.execute()
        return dict(seen), dict(dismissed)

    # -- the user's own data ------------------------------------------------------------
    def export(self, user_id: str) -> dict[str, Any]:
        """Everything Paperfeed holds about ``user_id``."""
        seen, dismissed = self.seen_and_dismissed(user_id)
        k = self.keys
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(k.user(user_id))
        for name in ("email", "sent"):
            pipe.hgetall(k.user_extra(user_id, name))
        profile, email, sent = pipe.execute()
        profile = {name: v for name, v in profile.items() if name != "token_hash"}
        return {
            "user_id": user_id,
            "profile": profile,
            "events": self.user_events(user_id),
            "seen": [{"paper_id": p, "ts": int(t)} for p, t in seen.items()],
            "dismissed": [{"paper_id": p, "ts": int(t)} for p, t in dismissed.items()],
            "email": email or None,
            "emails_sent": sent or {},
        }

    def erase(self, user_id: str, now: float | None = None) -> int:
        """Remove the user's events from the log and every key derived from them.

        Their contributions to the public aggregates (trending, counts, metadata votes) are
        taken back too. Returns the number of log entries deleted.

        It first marks the account as being erased, so that from then on :meth:`ingest` with
        a token refuses the user's batches: one that authenticated before the erasure and
        reaches Redis during it stores nothing (a single Redis), or is taken out of the log
        again (a Cluster), rather than outliving the erasure. The token still authenticates
        other requests until the account is deleted at the end, so an erasure that failed
        half-way (Redis lost) can be asked for again.
        """
        now = time.time() if now is None else now
        k = self.keys
        self.redis.hset(k.user(user_id), "erasing", int(now))
        events = self.user_events(user_id)
        seen, _ = self.seen_and_dismissed(user_id)
        partition = k.partition_of(user_id)
        pipe = self.redis.pipeline(transaction=False)
        by_partition: dict[int, list[str]] = {}
        for ev in events:
            by_partition.setdefault(ev["partition"], []).append(ev["entry_id"])
            paper_key = k.paper(ev["paper"]["id"])
            pipe.hincrby(paper_key, ev["type"] + "s", -1)
        for p, entry_ids in by_partition.items():
            pipe.xdel(k.stream(p), *entry_ids)
        members = [f"e:{user_id}:{ev['id']}" for ev in events]
        # reader marks: versions before 2026-11-28 kept one per paper read in this set too
        members += [f"r:{user_id}:{pid}" for pid in {ev["paper"]["id"] for ev in events}]
        if members:
            pipe.zrem(k.dedupe(partition), *members)
        # a reader's trending weight was added at their first read (their seen time is their
        # latest): take back the earliest read the log holds, capped at its arrival as ingest
        # caps it (the seen time where the log has none of it left)
        first_read: dict[str, int] = {}
        for ev in events:
            if ev["type"] in READ_KINDS:
                ts, pid = min(ev["ts"], ev["received_ms"] // 1000), ev["paper"]["id"]
                first_read[pid] = min(ts, first_read.get(pid, ts))
        readers = [(pid, first_read.get(pid, int(ts))) for pid, ts in seen.items()]
        for pid, _ in readers:
            pipe.hincrby(k.paper(pid), "readers", -1)
        for pid in {ev["paper"]["id"] for ev in events}:
            claim_keys = [k.paper(pid), k.paper_claims(pid), k.paper_claimants(pid)]
            self._script(self._unclaim, claim_keys, [user_id], pipe)
        if readers:
            self.queue_readers(pipe, readers, sign=-1)
            self._queue_views_stale(pipe)
        for key in k.user_keys(user_id):  # one by one: a Cluster pipeline deletes one key a call
            pipe.delete(key)
        pipe.zrem(k.users(), user_id)
        pipe.execute()
        return len(events)


_URL_TEMPLATES = {
    "arxiv": "https://arxiv.org/abs/{}",
    "doi": "https://doi.org/{}",
    "openreview": "https://openreview.net/forum?id={}",
    "acl": "https://aclanthology.org/{}/",
    "pwc": "https://paperswithcode.com/paper/{}",
}


def _view_field(window: str) -> str:
    """The field of a paper's entry that holds its score in a page view (``views_add``)."""
    return f"tr:{window}"


def paper_url(paper_id: str) -> str | None:
    """The public address of a paper, rebuilt from its canonical id."""
    namespace, _, local = paper_id.partition(":")
    template = _URL_TEMPLATES.get(namespace)
    return template.format(local) if template and local else None


def _paper_view(paper_id: str, raw: Mapping[str, str]) -> dict[str, Any]:
    view: dict[str, Any] = {"id": paper_id}
    for name in ("title", "url", "abstract"):
        if raw.get(name):
            view[name] = raw[name]
    view["authors"] = json.loads(raw["authors"]) if raw.get("authors") else []
    for name in ("readers", "opens", "clicks", "dismisses"):
        view[name] = max(0, int(raw.get(name, 0)))
    if raw.get("first_seen"):
        view["first_seen"] = int(float(raw["first_seen"]))
    return view


def _event_view(partition: int, entry_id: str, fields: Mapping[str, str]) -> dict[str, Any]:
    return {
        "partition": partition,
        "id": fields["e"],
        "type": fields["k"],
        "paper": {"id": fields["p"]},
        "ts": int(fields["ts"]),
        "site": fields.get("s", ""),
        "entry_id": entry_id,
        "received_ms": int(entry_id.split("-", 1)[0]),
    }
