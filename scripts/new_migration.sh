#!/usr/bin/env bash
# Autogenerate the next Alembic migration from the models: scripts/new_migration.sh 0003 complaints
# Optional third argument: the revision to build on (default: the single head).
# (revision id "<NUM>_<name>", file storage/migrations/versions/<NUM>_<name>.py). Review the result.
set -euo pipefail
cd "$(dirname "$0")/.."
num=$1; name=$2
tmp=$(mktemp -d)
export DATABASE_URL="sqlite+aiosqlite:///$tmp/gen.db"
.venv/bin/alembic upgrade heads >/dev/null
.venv/bin/alembic revision --autogenerate -m "$name" --rev-id "${num}_${name}" --head "${3:-head}" >/dev/null
f=$(ls storage/migrations/versions/*_"${num}_${name}"_*.py)
sed -i -e 's/storage\.types\.UTCDateTime(timezone=True)/sa.DateTime(timezone=True)/g' \
       -e 's/postgresql\.JSONB(astext_type=sa\.Text())/postgresql.JSONB()/g' \
       -e 's/postgresql\.JSONB(astext_type=Text())/postgresql.JSONB()/g' \
       -e '/### commands auto generated/d; /### end Alembic commands/d' \
       -e "s/^Create Date: .*/Create Date: $(date +%F)/" "$f"
mv "$f" "storage/migrations/versions/${num}_${name}.py"
.venv/bin/ruff check -q --fix "storage/migrations/versions/${num}_${name}.py" || true
.venv/bin/ruff format -q "storage/migrations/versions/${num}_${name}.py"
rm -rf "$tmp"
echo "storage/migrations/versions/${num}_${name}.py"
