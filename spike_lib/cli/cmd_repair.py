"""`python -m spike_lib repair PATH`: finish what a killed save left behind.

A save replaces a checkpoint or adapter folder by two renames; a kill between them leaves the
previous copy in .NAME.old-*/NAME and perhaps a half-written .NAME.tmp-*. Readers never move
them (they read the stepped-aside copy); this command, or `train --resume`, puts the previous
copy back and removes the leftovers. A run folder is repaired under its writer's lock, so a
running training is never touched. Taught in: book/how_to_use.md (What is safe)
"""

from pathlib import Path


def add_arguments(parser) -> None:
    parser.add_argument("path", help="a run folder, or a checkpoint or adapter folder (even one "
                        "that a killed save left missing)")


def run(args) -> dict:
    from spike_lib.train.runfolder import CKPT, RUN_CONFIG, locked, repair_folder

    path = Path(args.path)
    if (path / RUN_CONFIG).is_file():  # a run: its checkpoint, under the writer's lock
        with locked(path):
            done = repair_folder(path / CKPT)
    else:
        if not path.parent.is_dir():
            raise ValueError(f"{path.parent} does not exist: give the path of the folder to "
                             "repair")
        done = repair_folder(path)
    if not args.json:
        print("\n".join(done) if done else f"{path}: nothing to repair")
    return {"path": str(path), "repaired": done}
