-- Leader leases (see docs/leadership.md). One row per role; the holder
-- renews it well before it expires, and anyone may take it once it has.

-- name: Acquire
-- Takes lease :name for holder :holder for :ttlMs ms if it is free, expired,
-- or already ours. A change of holder bumps the epoch; the result is empty
-- when another holder's lease is still valid.
with clock as materialized (select {{schema}}.clock_now() as now)
insert into {{schema}}.leases as l (name, holder, epoch, acquired_at, expires_at)
select :name, :holder, 1, clock.now, clock.now + make_interval(secs => :ttlMs::double precision / 1000)
from clock
on conflict (name) do update
set holder = excluded.holder,
    epoch = case when l.holder = excluded.holder and l.expires_at > excluded.acquired_at
                 then l.epoch else l.epoch + 1 end,
    acquired_at = case when l.holder = excluded.holder and l.expires_at > excluded.acquired_at
                       then l.acquired_at else excluded.acquired_at end,
    expires_at = excluded.expires_at
where l.holder = excluded.holder or l.expires_at <= excluded.acquired_at
returning epoch, expires_at;

-- name: Renew
-- Extends the lease only while this holder and epoch still hold it.
update {{schema}}.leases
set expires_at = (select {{schema}}.clock_now()) + make_interval(secs => :ttlMs::double precision / 1000)
where name = :name and holder = :holder and epoch = :epoch and expires_at > (select {{schema}}.clock_now())
returning expires_at;

-- name: Release
-- Gives the lease up on shutdown so a standby takes over at once.
update {{schema}}.leases
set expires_at = (select {{schema}}.clock_now())
where name = :name and holder = :holder and epoch = :epoch
returning name;

-- name: Get
select name, holder, epoch, acquired_at, expires_at,
       expires_at > (select {{schema}}.clock_now()) as valid
from {{schema}}.leases where name = :name;
