// The floor of any PostgreSQL command that starts as a fresh process and uses Debian's
// libpq without a pooler: load libpq (and its library chain), connect with the parameters
// patchgate's store uses (src/store/pg_conn.cc: GSS encryption off, the session settings in
// the startup packet), run one trivial statement, disconnect. Nothing else.
// Usage: pq_floor URL [SQL]    (SQL defaults to "SELECT 1"; exit 0 when it succeeded)
#include <libpq-fe.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: pq_floor URL [SQL]\n");
    return 2;
  }
  const char* keys[] = {"gssencmode", "dbname", "options", NULL};
  const char* values[] = {"disable", argv[1],
                          "-c client_min_messages=warning -c max_parallel_workers_per_gather=0 -c jit=off", NULL};
  PGconn* c = PQconnectdbParams(keys, values, 1);
  if (PQstatus(c) != CONNECTION_OK) {
    fprintf(stderr, "pq_floor: %s", PQerrorMessage(c));
    PQfinish(c);
    return 1;
  }
  PGresult* r = PQexec(c, argc > 2 ? argv[2] : "SELECT 1");
  int ok = PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK;
  if (!ok) fprintf(stderr, "pq_floor: %s", PQerrorMessage(c));
  else printf("%s\n", PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "");
  PQclear(r);
  PQfinish(c);
  return ok ? 0 : 1;
}
