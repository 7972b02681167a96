"""Converting a journal of the older layout, whose operation rows were rewritten in place.

Older journals kept one row per placement in ``ops`` and moved its ``destination`` along with the
file; re-sorts added rows of their own. The conversion (step 1 of :mod:`sorter.files.journal`'s
schema) makes a placement of each copy or move that sorting made, at the place the old row last
pointed to, and a history line for each re-sort move, so undo works on folders sorted before.
A move whose content was already in the folder (an old "duplicate" in move mode) becomes a
placement of its own only where no other photo holds that file; otherwise its bytes live on in
the other placement, and undo cannot give this source back a file of its own.
"""

from __future__ import annotations

import sqlite3

from sorter.usertypes import Arrival, OpKind, PlacementStatus, RunMode, RunStatus


def convert_legacy_ops(db: sqlite3.Connection) -> None:
    """Inside the migration's transaction: ``legacy_ops`` into placements and their history."""
    modes = {int(r[0]): (str(r[1]), str(r[2])) for r in db.execute("SELECT id, mode, status FROM runs")}
    rows = db.execute(
        "SELECT id, run_id, source, destination, sha256, size, label, confidence, status, created"
        " FROM legacy_ops ORDER BY id"
    ).fetchall()
    by_path: dict[str, int] = {}
    for _, run_id, source, destination, sha, size, label, confidence, status, created in rows:
        mode, run_status = modes.get(int(run_id), (str(RunMode.COPY), str(RunStatus.FINISHED)))
        if mode == RunMode.RESORT:
            continue
        if status == "duplicate" and (mode != RunMode.MOVE or destination in by_path):
            continue  # the file is another placement's, or the user's own
        how = Arrival.COPIED if status in ("copied", "kept") and mode != RunMode.MOVE else Arrival.MOVED
        state = {"undone": PlacementStatus.UNDONE, "kept": PlacementStatus.KEPT}.get(status, PlacementStatus.PLACED)
        if run_status == RunStatus.UNDONE and state == PlacementStatus.PLACED:
            state = PlacementStatus.UNDONE
        cur = db.execute(
            "INSERT INTO placements(run_id, source, path, path_key, sha256, size, label, confidence, how, status,"
            " decided_by) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (run_id, source, destination, destination, sha, size, label, confidence, str(how), str(state), run_id),
        )
        placement_id = int(cur.lastrowid or 0)
        if state == PlacementStatus.PLACED:
            by_path[destination] = placement_id
        db.execute(
            "INSERT INTO ops(run_id, placement_id, kind, from_path, to_path, label, confidence, created)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (run_id, placement_id, str(OpKind.PLACE), source, destination, label, confidence, created),
        )
    for _, run_id, source, destination, _, _, label, _, status, created in rows:
        mode, run_status = modes.get(int(run_id), ("", ""))
        moved = by_path.get(destination)
        if mode != RunMode.RESORT or status != "moved" or run_status == RunStatus.UNDONE or moved is None:
            continue
        db.execute(
            "INSERT INTO ops(run_id, placement_id, kind, from_path, to_path, label, confidence, created)"
            " VALUES (?,?,?,?,?,?,?,?)",
            (run_id, moved, str(OpKind.MOVE), source, destination, label, None, created),
        )
        db.execute("UPDATE placements SET decided_by=? WHERE id=?", (run_id, moved))
