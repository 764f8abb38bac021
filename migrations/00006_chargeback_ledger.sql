-- Chargeback: a ledger of closed days' seats, so that a month's chargeback
-- reads one row per day, allotment, department and seat state instead of
-- recomputing them from the version tables (docs/chargeback.md, "The
-- ledger").
--
-- A day D of time zone Z is closed when its end instant is at or before
-- both now and the start of the latest successful sync run. Nothing can
-- change the versions overlapping a closed day any more: a run stamps its
-- changes with its own start, runs are serialized by the leader lock, and
-- Apply refuses (fence) a run older than the newest applied one; proxy
-- writes stamp theirs with the time of the write, taken just before they
-- take the apply lock, and only ever close or replace current versions from
-- that instant on. So a closed day's seats, computed once, stay right.
--
-- Only the seats are kept, exactly the rows the seat-day query produces
-- before prices and owners are joined: prices (finance may set a price for
-- a past day) and allotment owners have their own history and are joined
-- when the ledger is read.

-- +goose Up

-- The days whose seats are in chargeback_seat_days, per time zone. A day
-- with no seat at all is still marked: it is computed, and empty.
CREATE TABLE chargeback_days (
    time_zone   text        NOT NULL,
    day         date        NOT NULL,
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (time_zone, day)
);

-- One row per day, allotment, seat state and department: held seats per
-- holders' department ('' for holders without one), and one idle row per
-- allotment and day with idle seats (department ''). Collations are those
-- of the columns the rows come from, so that ordering matches the live
-- computation's.
CREATE TABLE chargeback_seat_days (
    time_zone       text             NOT NULL,
    day             date             NOT NULL,
    allotment_id    text COLLATE "C" NOT NULL,
    sku_id          text             NOT NULL,
    sku_part_number text             NOT NULL,
    department      text             NOT NULL,
    idle            boolean          NOT NULL,
    seats           bigint           NOT NULL CHECK (seats > 0),
    dup_seats       bigint           NOT NULL CHECK (dup_seats >= 0),
    PRIMARY KEY (time_zone, day, allotment_id, idle, department),
    FOREIGN KEY (time_zone, day) REFERENCES chargeback_days (time_zone, day) ON DELETE CASCADE
);

-- The months all of whose days are in the ledger, per time zone, and their
-- sums: one row per month, allotment, SKU, seat state and department with
-- the seat-days of its days (seats summed over them) and the first and last
-- of those days. A month's chargeback reads these instead of its days when
-- the month's price is the same all month (no price starts after its
-- first day) and the idle seats need no daily owner.
CREATE TABLE chargeback_months (
    time_zone   text        NOT NULL,
    month       date        NOT NULL CHECK (extract(day FROM month) = 1),
    computed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (time_zone, month)
);

CREATE TABLE chargeback_seat_months (
    time_zone       text             NOT NULL,
    month           date             NOT NULL,
    allotment_id    text COLLATE "C" NOT NULL,
    sku_id          text             NOT NULL,
    sku_part_number text             NOT NULL,
    department      text             NOT NULL,
    idle            boolean          NOT NULL,
    seat_days       bigint           NOT NULL CHECK (seat_days > 0),
    dup_seat_days   bigint           NOT NULL CHECK (dup_seat_days >= 0),
    first_day       date             NOT NULL,
    last_day        date             NOT NULL,
    PRIMARY KEY (time_zone, month, allotment_id, idle, department, sku_id, sku_part_number),
    FOREIGN KEY (time_zone, month) REFERENCES chargeback_months (time_zone, month) ON DELETE CASCADE
);

-- +goose Down

DROP TABLE chargeback_seat_months;
DROP TABLE chargeback_months;
DROP TABLE chargeback_seat_days;
DROP TABLE chargeback_days;
