# Sourced by a recipe before utils/parse_options.sh: options_help FILE... prints one line per
# option of each FILE -- every "name=default   # comment" line before its help_message= line,
# with the comment lines that continue it -- as "--name VALUE  comment", VALUE being the
# variable's current value (its default, or a conf file's).  A ". ./conf/x.conf  # what"
# line in FILE lists x.conf's options under a heading.  So --help is made from the
# defaults block itself and lists every option, as Kaldi's parse_options users write by hand.
options_help() {
  local file line name value comment seen
  for file in "$@"; do
    seen=
    while IFS= read -r line; do
      [[ $line == help_message=* ]] && break
      if [[ $line =~ ^\.\ (\./)?(conf/[^ ]+)[[:space:]]*(#[[:space:]]*(.*))?$ ]]; then
        echo "${BASH_REMATCH[4]:-${BASH_REMATCH[2]}}:"
        options_help "${BASH_REMATCH[2]}"
      elif [[ $line =~ ^([a-z][a-z0-9_]*)=[^#]*(#[[:space:]]*(.*))?$ ]]; then
        name=${BASH_REMATCH[1]} comment=${BASH_REMATCH[3]-} value=${!BASH_REMATCH[1]-} seen=1
        [[ $value =~ ^[^[:space:]]+$ ]] || value=\"$value\"
        printf '  %-36s  %s\n' "--${name//_/-} $value" "$comment"
      elif [[ -n ${name:-} && $line =~ ^[[:space:]]+#[[:space:]]?(.*)$ ]]; then
        printf '  %-36s  %s\n' "" "${BASH_REMATCH[1]}"
      elif [[ -n $seen && $line =~ ^#[[:space:]]?(.*:)$ ]]; then   # a heading after the first option
        name= ; echo "${BASH_REMATCH[1]}"
      else
        name=
      fi
    done < "$file"
  done
}
