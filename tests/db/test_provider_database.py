"""The provider's connections: kept across calls, a read in one round trip (counted by
bench.latency_proxy); an unreachable server: tests/unit/test_database_connect.py."""

import threading
import time

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

from bench.latency_proxy import LatencyProxy
from supabase_access.sql import database
from supabase_access.sql.database import Database, read_together


def proxied_database(fresh_db: str, proxy: LatencyProxy) -> Database:
    params = conninfo_to_dict(fresh_db)
    return Database(
        {
            "host": "127.0.0.1",
            "port": proxy.port,
            "database": params["dbname"],
            "username": params["user"],
            "password": params["password"],
            "sslmode": "disable",
        }
    )


@pytest.mark.db
def test_a_read_is_one_round_trip_on_a_connection_kept_across_calls(fresh_db: str) -> None:
    port = int(conninfo_to_dict(fresh_db).get("port") or 5432)
    with LatencyProxy(port, delay=0, lifetime=60) as proxy:
        db = proxied_database(fresh_db, proxy)
        db.warm_up()
        assert proxy.reset().connections == 1
        for _ in range(3):  # one call after another: the same connection, no ping, no BEGIN/COMMIT
            with db.connection() as conn:
                assert conn.execute("select 1").fetchone() == (1,)
        assert (proxy.counts().connections, proxy.counts().turns) == (0, 3)
        proxy.reset()
        with db.connection() as conn:  # several independent reads: one round trip
            rows = read_together(conn, ("select 1", None), ("select %s::int", (2,)))
        assert rows == [[(1,)], [(2,)]] and proxy.reset().turns == 1
        with db.connection() as conn, conn.transaction():  # a write says where its transaction is
            conn.execute("create table t (id int)")
            conn.execute("insert into t values (1)")
        assert proxy.reset().turns == 4  # BEGIN, two statements, COMMIT
        db.close()


@pytest.mark.db
def test_a_connection_closed_while_idle_is_replaced(fresh_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    port = int(conninfo_to_dict(fresh_db).get("port") or 5432)
    with LatencyProxy(port, delay=0, lifetime=60) as proxy:
        db = proxied_database(fresh_db, proxy)
        with db.connection() as conn:
            pid = conn.info.backend_pid
        with psycopg.connect(fresh_db, autocommit=True) as admin:  # a pooler or the server closes it
            admin.execute("select pg_terminate_backend(%s, 5000)", (pid,))
        monkeypatch.setattr(database, "PING_AFTER_IDLE_SECONDS", 0.0)
        with db.connection() as conn:
            assert conn.info.backend_pid != pid and conn.execute("select 1").fetchone() == (1,)
        # A transaction left open by mistake is rolled back, not carried into the next call.
        with db.connection() as conn:
            conn.execute("begin")
            conn.execute("create table left_open (id int)")
        with db.connection() as conn:
            assert conn.execute("select to_regclass('left_open')").fetchone() == (None,)
        db.close()


@pytest.mark.db
def test_a_call_during_warm_up_uses_its_connection(fresh_db: str) -> None:
    port = int(conninfo_to_dict(fresh_db).get("port") or 5432)
    with LatencyProxy(port, delay=0.02, lifetime=60) as proxy:  # connecting takes a while
        db = proxied_database(fresh_db, proxy)
        warming = threading.Thread(target=db.warm_up)
        warming.start()
        while not db._warming_up.is_set():  # the plugin's first call arrives while it connects
            time.sleep(0.001)
        with db.connection() as conn:
            assert conn.execute("select 1").fetchone() == (1,)
        warming.join()
        assert proxy.counts().connections == 1
        db.close()
