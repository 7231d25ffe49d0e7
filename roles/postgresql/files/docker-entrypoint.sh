#!/usr/bin/env bash
# Entrypoint of kailash/postgresql: the interface of the official postgres image
# (docker-library/postgres), reduced to what the Kailash stack uses:
#   PGDATA, POSTGRES_USER, POSTGRES_DB, POSTGRES_PASSWORD / POSTGRES_PASSWORD_FILE,
#   POSTGRES_INITDB_ARGS, POSTGRES_HOST_AUTH_METHOD; initdb on an empty data
#   directory, /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz run once on a
#   socket-only temporary server, then `exec postgres "$@"`.
# Runs as any uid that owns PGDATA (the stack uses 70:70); started as root it
# fixes the ownership and re-executes itself as postgres.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# file_env VAR [DEFAULT]: VAR from $VAR or from the file named by ${VAR}_FILE.
file_env() {
	local var="$1" file_var="${1}_FILE" default="${2:-}" value
	if [ -n "${!var:-}" ] && [ -n "${!file_var:-}" ]; then
		die "both $var and $file_var are set (but are exclusive)"
	fi
	value="$default"
	if [ -n "${!var:-}" ]; then
		value="${!var}"
	elif [ -n "${!file_var:-}" ]; then
		[ -r "${!file_var}" ] || die "$file_var names ${!file_var}, which this user ($(id -u):$(id -g)) cannot read"
		value="$(< "${!file_var}")"
	fi
	export "$var"="$value"
	unset "$file_var"
}

# psql on the temporary server's socket as the superuser
process_sql() {
	local -a args=(--variable ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ -n "${POSTGRES_DB:-}" ]; then
		args+=(--dbname "$POSTGRES_DB")
	fi
	PGHOST= PGHOSTADDR= psql "${args[@]}" "$@"
}

run_init_scripts() {
	local f
	shopt -s nullglob
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then log "running $f"; "$f"; else log "sourcing $f"; . "$f"; fi ;;
			*.sql) log "running $f"; process_sql -f "$f"; echo ;;
			*.sql.gz) log "running $f"; gunzip -c "$f" | process_sql; echo ;;
			*) log "ignoring $f" ;;
		esac
	done
	shopt -u nullglob
}

# the server options from "$@" (postgres -c ... -c ...) without the program name
server_args() {
	if [ "${1:-}" = postgres ]; then shift; fi
	# nothing to quote without options (printf would print '' and the server refuse it)
	if [ $# -gt 0 ]; then printf '%q ' "$@"; fi
}

init_database() {
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=}"

	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		die "the database is uninitialized and no superuser password is set: set POSTGRES_PASSWORD_FILE (or POSTGRES_PASSWORD)"
	fi

	log "initializing $PGDATA for $POSTGRES_USER"
	# shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of options
	initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") \
		--auth-local=scram-sha-256 --auth-host=scram-sha-256 $POSTGRES_INITDB_ARGS

	# the data directory's own pg_hba.conf (used when no hba_file is given)
	{
		echo
		echo "host all all all ${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"
	} >> "$PGDATA/pg_hba.conf"

	# a temporary server on the socket only, for the database and the init scripts
	export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
	pg_ctl -D "$PGDATA" -w -o "$(server_args "$@") -c listen_addresses='' -p ${PGPORT:-5432}" start

	if [ "$POSTGRES_DB" != postgres ]; then
		if [ -z "$(POSTGRES_DB=postgres process_sql --tuples-only --no-align \
				--set db="$POSTGRES_DB" <<< "SELECT 1 FROM pg_database WHERE datname = :'db';")" ]; then
			POSTGRES_DB=postgres process_sql --set db="$POSTGRES_DB" <<< 'CREATE DATABASE :"db";'
			log "created database $POSTGRES_DB"
		fi
	fi
	run_init_scripts

	pg_ctl -D "$PGDATA" -m fast -w stop
	unset PGPASSWORD
	log "initialization complete"
}

if [ "${1:-}" = "" ] || [ "${1:0:1}" = "-" ]; then
	set -- postgres "$@"
fi

if [ "$1" = postgres ] && [ -z "${_KAILASH_ENTRYPOINT_DROPPED:-}" ]; then
	if [ "$(id -u)" = 0 ]; then
		mkdir -p "$PGDATA"
		chown postgres:postgres "$PGDATA"
		chmod 0700 "$PGDATA"
		find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
		export _KAILASH_ENTRYPOINT_DROPPED=1
		exec setpriv --reuid=postgres --regid=postgres --init-groups "$BASH_SOURCE" "$@"
	fi
fi

if [ "$1" = postgres ]; then
	mkdir -p "$PGDATA" 2>/dev/null || true
	[ -w "$PGDATA" ] || die "$PGDATA is not writable by $(id -u):$(id -g) (a volume owned by another user?)"
	chmod 0700 "$PGDATA" 2>/dev/null || true
	if [ ! -s "$PGDATA/PG_VERSION" ]; then
		init_database "$@"
	else
		log "$PGDATA holds a PostgreSQL $(cat "$PGDATA/PG_VERSION") database; skipping initialization"
	fi
	unset POSTGRES_PASSWORD _KAILASH_ENTRYPOINT_DROPPED
fi

exec "$@"
