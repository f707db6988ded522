"""The reference app's model with a copy of the owner on `actions` (copyOwner), as data, as a
parsed model and as a prod stack's config."""

from __future__ import annotations

import json
from typing import Any

from supabase_access.model.access_model import AccessModel, parse_model


def copy_model_data(copy: object = True) -> dict[str, Any]:
    return {
        "schema": "public",
        "tables": {
            "sessions": {"owner": "user_id", "userForeignKey": "sessions_user_id_fkey"},
            "segments": {"through": {"column": "session_id", "table": "sessions"}},
            "turns": {"through": {"column": "session_id", "table": "sessions"}},
            "actions": {"through": {"column": "turn_id", "table": "turns"}, "copyOwner": copy},
            "generated_content": {"through": {"column": "session_id", "table": "sessions"}},
        },
    }


def copy_model(copy: object = True) -> AccessModel:
    return parse_model(copy_model_data(copy), setting="m")


COPY_OWNER = {
    "supabase-access:environment": "prod",
    "supabase-access:profile": "owner",
    "supabase-access:model": json.dumps(copy_model_data()),
}
