-- patchgate store, version 5: why a served download ended as it did. `detail` is empty for
-- an ordinary end; a download cut because the file changed on disk while it was being served
-- says so here ("integrity: chunk 3 (bytes ...) no longer matches its verified digest"), next
-- to outcome 'aborted' and the bytes really sent. Valid UTF-8, at most 512 bytes (the store's
-- text rules, store.h). A new column with a constant default: no table rewrite on either
-- engine, and the scope index of migration 0006 is left as it is (scope reads the detail of
-- aborted rows only).
ALTER TABLE downloads ADD COLUMN detail TEXT NOT NULL DEFAULT '';
