"""One APIRouter per domain; `ROUTERS` is the order the app includes them in."""
