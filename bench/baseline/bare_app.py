"""The pages benchmark's baseline: a bare Flask + Jinja + SQLite page, served the same way as
the portal (gunicorn, 2 sync workers). It reads a few rows and renders them in a template file,
loaded and compiled once as Flask does for any app's templates. (It used to compile a template
string on every request, which was three quarters of its time and flattered every ratio.)"""

from __future__ import annotations

import os
import sqlite3

from flask import Flask, g, render_template

DATABASE = os.environ.get("BASELINE_DATABASE", "")  # set for the server; not when imported

app = Flask(__name__)


def _connection() -> sqlite3.Connection:
    if "db" not in g:
        g.db = sqlite3.connect(DATABASE)
    return g.db


@app.teardown_appcontext
def _close(_exc) -> None:
    connection = g.pop("db", None)
    if connection is not None:
        connection.close()


@app.route("/")
def page():
    rows = (
        _connection().execute("SELECT id, title, body FROM section ORDER BY id LIMIT 10").fetchall()
    )
    return render_template("page.html", title="A section", rows=rows)


def create_database(path: str) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE section (id INTEGER PRIMARY KEY, title TEXT, body TEXT)")
        connection.executemany(
            "INSERT INTO section (title, body) VALUES (?, ?)",
            [(f"Section {n}", "Some plain words about the study. " * 20) for n in range(20)],
        )
