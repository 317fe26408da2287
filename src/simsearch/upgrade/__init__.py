"""Model upgrades: compatibility maps between embedding spaces, migrate and backfill."""
