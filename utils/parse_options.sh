#!/usr/bin/env bash
# Parse "--option value" / "--option=value" arguments into shell variables,
# with Kaldi's utils/parse_options.sh semantics: the caller declares every
# option as a variable with its default *before* sourcing this file; dashes in
# option names become underscores; an unknown option is an error; "--config F"
# sources F first; "--help" prints $help_message. Positional arguments remain
# in "$@".

__po_usage() { echo -e "${help_message:-}" 1>&2; }
# As in Kaldi: an option whose default is true or false takes only true or false.
__po_set() {
  if { [ "${!1}" = true ] || [ "${!1}" = false ]; } && [ "$2" != true ] && [ "$2" != false ]; then
    echo "$0: option --${1//_/-} takes true or false, got '$2'" 1>&2; exit 1
  fi
  printf -v "$1" '%s' "$2"
}

while true; do
  [ $# -eq 0 ] && break
  case "$1" in
    --help|-h)
      __po_usage; exit 0 ;;
    --config)
      [ $# -lt 2 ] && { echo "$0: --config needs a file" 1>&2; exit 1; }
      [ -f "$2" ] || { echo "$0: config file '$2' not found" 1>&2; exit 1; }
      # shellcheck disable=SC1090
      . "$2"; shift 2 ;;
    --*=*)
      __po_name=$(echo "${1%%=*}" | sed 's/^--//; s/-/_/g')
      __po_value="${1#*=}"
      if [ -z "${!__po_name+x}" ]; then
        echo "$0: invalid option ${1%%=*}" 1>&2; __po_usage; exit 1
      fi
      __po_set "$__po_name" "$__po_value"; shift ;;
    --*)
      __po_name=$(echo "$1" | sed 's/^--//; s/-/_/g')
      if [ -z "${!__po_name+x}" ]; then
        echo "$0: invalid option $1" 1>&2; __po_usage; exit 1
      fi
      [ $# -lt 2 ] && { echo "$0: option $1 needs a value" 1>&2; exit 1; }
      __po_set "$__po_name" "$2"; shift 2 ;;
    *) break ;;
  esac
done
unset __po_name __po_value
unset -f __po_set
true
