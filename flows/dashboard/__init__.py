"""Operations dashboard: a small read-mostly FastAPI app over the provenance database."""
