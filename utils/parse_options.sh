#!/usr/bin/env bash
# Parse "--option value" / "--option=value" arguments into shell variables,
# with Kaldi's utils/parse_options.sh semantics: the caller declares every
# option as a variable with its default *before* sourcing this file; dashes in
# option names become underscores; an unknown option is an error; "--config F"
# sources F first; "--help" prints $help_message. Positional arguments remain
# in "$@". An option takes the type of its default (true/false, whole number,
# number); check_int and check_number (below) check ranges once parsed.

__po_usage() { echo -e "${help_message:-}" 1>&2; }
__po_whole='^[0-9]+$'
__po_number='^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$'
# As in Kaldi: an option whose default is true or false takes only true or false.
# Likewise an option whose default is a whole number (--nj 4) takes only a whole
# number, and one whose default is a decimal number (--prior 0.01) only a number.
__po_set() {
  if { [ "${!1}" = true ] || [ "${!1}" = false ]; } && [ "$2" != true ] && [ "$2" != false ]; then
    echo "$0: option --${1//_/-} takes true or false, got '$2'" 1>&2; exit 1
  fi
  if [[ ${!1} =~ $__po_whole ]] && ! [[ $2 =~ $__po_whole ]]; then
    echo "$0: option --${1//_/-} takes a whole number, got '$2'" 1>&2; exit 1
  fi
  if [[ ${!1} =~ $__po_number ]] && ! [[ $2 =~ $__po_number ]]; then
    echo "$0: option --${1//_/-} takes a number, got '$2'" 1>&2; exit 1
  fi
  printf -v "$1" '%s' "$2"
  __po_given="${__po_given:-} $1 "
}

# The checks a script runs on its numbers once parsed, also on values that its
# conf files set (FILE names where the value came from, unless an option gave it):
#   check_int VAR MIN [MAX [FILE]]     a whole number, MIN <= VAR <= MAX (MAX may be "")
#   check_number VAR LOW HIGH [FILE]   a number, LOW < VAR < HIGH
# Each prints a one-line error naming the option and exits 1.
__po_name_of() {
  if [ -n "${2:-}" ] && [[ ${__po_given:-} != *" $1 "* ]]; then echo "$1 in $2"; else echo "--${1//_/-}"; fi
}
check_int() {
  local value=${!1-} what; what=$(__po_name_of "$1" "${4:-}")
  if ! [[ $value =~ $__po_whole ]]; then
    echo "$0: $what takes a whole number, got '$value'" 1>&2; exit 1
  fi
  if [ ${#value} -gt 18 ]; then   # beyond the shell's arithmetic
    value=$(echo "$value" | sed 's/^0*//'); value=${value:-0}
    [ ${#value} -le 18 ] || { echo "$0: $what is too large: $value" 1>&2; exit 1; }
  fi
  if [ "$((10#$value))" -lt "$2" ]; then
    echo "$0: $what must be at least $2, got $value" 1>&2; exit 1
  fi
  if [ -n "${3:-}" ] && [ "$((10#$value))" -gt "$3" ]; then
    echo "$0: $what must be at most $3, got $value" 1>&2; exit 1
  fi
}
check_number() {
  local value=${!1-} what; what=$(__po_name_of "$1" "${4:-}")
  if ! [[ $value =~ $__po_number ]] || ! awk -v v="$value" -v lo="$2" -v hi="$3" \
      'BEGIN { exit !(v + 0 > lo + 0 && v + 0 < hi + 0) }'; then
    echo "$0: $what takes a number between $2 and $3 (exclusive), got '$value'" 1>&2; exit 1
  fi
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
