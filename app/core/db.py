"""Database engine and sessions. SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE.

Transactions that only read can run on `read_engine(engine)`: a deferred BEGIN on SQLite.

Hot paths (the queue's claim, heartbeat and complete) may run `Prepared` statements in a
`driver_transaction`: the same SQL and value conversion as `Connection.execute`, without
its per-call cost, which on SQLite exceeds the cost of the statements themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, NamedTuple, cast

from sqlalchemy import ClauseElement, Engine, event
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.engine.interfaces import DBAPICursor
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.sql.compiler import SQLCompiler
from sqlmodel import create_engine

READ_ONLY_OPTION = "ptychojobs_read_only"  # execution option: begin deferred on SQLite


def _is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def make_engine(url: str, *, busy_timeout_ms: int = 30_000) -> Engine:
    """Create an engine; for SQLite, every transaction takes the write lock up front.

    Deferred SQLite transactions that read and then write fail with "database is locked"
    when another writer got there first; BEGIN IMMEDIATE queues them behind the busy
    timeout instead.
    """
    if not _is_sqlite(url):
        return create_engine(url, pool_pre_ping=True)
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        reads_only = conn.get_execution_options().get(READ_ONLY_OPTION, False)
        conn.exec_driver_sql("BEGIN" if reads_only else "BEGIN IMMEDIATE")

    return engine


def read_engine(engine: Engine) -> Engine:
    """The same engine for transactions that only read: on SQLite they take no write lock.

    In WAL mode a deferred transaction reads one consistent snapshot while writers commit,
    so reads neither wait for a writer nor make writers wait. A write in such a
    transaction would fail with "database is locked" instead of queueing: only read.
    """
    return engine.execution_options(**{READ_ONLY_OPTION: True})


def sqlite_path(url: str) -> Path | None:
    """The resolved SQLite database file of `url`; None for in-memory and other databases."""
    if not _is_sqlite(url):
        return None
    database = make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database).resolve()


DriverParams = Sequence[Any] | dict[str, Any]


class Bound(NamedTuple):
    """SQL and the driver's parameters for it, ready to execute."""

    sql: str
    params: DriverParams


class Prepared:
    """A Core statement compiled once for a dialect, to run on a DBAPI cursor.

    Values go through the bind processors of their columns' types, exactly as
    `Connection.execute` would convert them (aware datetimes, JSON, enums).
    """

    def __init__(
        self, statement: ClauseElement, dialect: Dialect, column_keys: Sequence[str] = ()
    ) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect, column_keys=column_keys))
        if compiled.escaped_bind_names:
            raise ValueError(f"bind names need escaping on {dialect.name}: {compiled.string}")
        self.sql = compiled.string
        self._order = tuple(compiled.positiontup or ()) if compiled.positional else None
        self._fixed: dict[str, Any] = {}
        self._processors: list[tuple[str, Callable[[Any], Any]]] = []
        for bind, name in compiled.bind_names.items():
            process = bind.type.dialect_impl(dialect).bind_processor(dialect)
            if not bind.required:  # a value written into the statement, e.g. a status
                self._fixed[name] = process(bind.value) if process else bind.value
            elif process is not None:
                self._processors.append((name, process))

    def bind(self, values: Mapping[str, Any]) -> Bound:
        """The statement with these values converted for the driver (all required binds)."""
        params = {**self._fixed, **values}
        for name, process in self._processors:
            params[name] = process(params[name])
        if self._order is None:
            return Bound(self.sql, params)
        return Bound(self.sql, [params[name] for name in self._order])


class DriverTransaction:
    """Runs bound statements in one transaction on a pooled DBAPI connection.

    Bind before the transaction where the values allow it: on SQLite the transaction holds
    the database's write lock, and converting values is work that other writers wait for.
    """

    def __init__(self, cursor: DBAPICursor) -> None:
        self.cursor = cursor
        self.statement = ""  # the SQL that a driver error will be reported with
        self.params: DriverParams | None = None

    def execute(self, bound: Bound) -> DBAPICursor:
        """Run a bound statement; the cursor holds its rows and rowcount."""
        self.statement, self.params = bound
        self.cursor.execute(self.statement, self.params)
        return self.cursor

    def about(self, statement: str) -> str:
        """Note a statement without parameters (BEGIN, COMMIT) for error reports."""
        self.statement, self.params = statement, None
        return statement


@contextmanager
def driver_transaction(engine: Engine) -> Iterator[DriverTransaction]:
    """A short write transaction on a pooled DBAPI connection; BEGIN IMMEDIATE on SQLite.

    Commits on success and rolls back on error. Driver errors come out as SQLAlchemy's
    `DBAPIError` subclasses, as from `Connection.execute`, so callers catch the same types.
    """
    dialect = engine.dialect
    driver_error = dialect.loaded_dbapi.Error
    transaction: DriverTransaction | None = None
    connection: PoolProxiedConnection | None = None
    try:
        connection = engine.raw_connection()
        transaction = DriverTransaction(connection.cursor())
        if dialect.name == "sqlite":  # PostgreSQL drivers begin on the first statement
            transaction.cursor.execute(transaction.about("BEGIN IMMEDIATE"))
        yield transaction
        transaction.about("COMMIT")
        connection.commit()
    except driver_error as exc:
        invalidated = _abandon(dialect, connection, transaction, exc)
        statement, params = (
            (transaction.statement, transaction.params) if transaction else ("", None)
        )
        raise DBAPIError.instance(
            statement,
            params,
            exc,
            driver_error,
            connection_invalidated=invalidated,
            dialect=dialect,
        ) from exc
    except BaseException:
        _abandon(dialect, connection, transaction, None)
        raise
    finally:
        if transaction is not None:
            with suppress(Exception):  # the cursor of a dropped connection refuses to close
                transaction.cursor.close()
        if connection is not None:
            connection.close()  # back to the pool


def _abandon(
    dialect: Dialect,
    connection: PoolProxiedConnection | None,
    transaction: DriverTransaction | None,
    error: Exception | None,
) -> bool:
    """Roll back after an error; drop the connection if it broke. True when dropped."""
    if connection is None:
        return False
    cursor = transaction.cursor if transaction else None
    broken = error is not None and dialect.is_disconnect(
        cast(Any, error), connection.dbapi_connection, cursor
    )
    if broken:
        connection.invalidate(error)
        return True
    try:
        connection.rollback()
    except Exception:  # a connection that cannot roll back cannot be reused either
        connection.invalidate()
        return True
    return False
