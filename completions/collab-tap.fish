function __collab-tap_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-tap_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __collab-tap_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-tap_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __collab-tap_parse_tokens -S
    set -l unparsed_tokens (__collab-tap_tokens -pc)
    switch $unparsed_tokens[1]
    case 'collab-tap'
        __collab-tap_parse_subcommand -r 1 'room=+' 'type=+' 'user=+' 'all' 'raw' 'stats' 'interval=' 'replay=' 'speed=' 'token=' 'max-retries=' 'strict' 'max-line=' 'ca-file=' 'insecure' 'q/quiet' 'h/help'
        switch $unparsed_tokens[1]
        case 'help'
            __collab-tap_parse_subcommand -r 1 
        end
    end
end

function __collab-tap_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __collab-tap_parse_subcommand -S -a positional_count
    argparse -s r -- $argv
    set -l option_specs $argv[2..]
    set -l is_repeating_positional $_flag_r
    set -el _flag_r
    set -a commands $unparsed_tokens[1]
    set positional_index 0
    while true
        set -e unparsed_tokens[1]
        argparse -sn "$commands" $option_specs -- $unparsed_tokens 2> /dev/null
        set unparsed_tokens $argv
        set positional_index (math $positional_index + 1)
        for non_repeating_flag_or_option in $non_repeating_flags_or_options
            if set -ql "_flag_$(string replace -a - _ -- $non_repeating_flag_or_option)"
                set non_repeating_flags_or_options_absent 1
                break
            end
        end
        test (count $unparsed_tokens) -eq 0 -o \( -z "$is_repeating_positional" -a "$positional_index" -gt "$positional_count" \) && break
    end
end

function __collab-tap_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __collab-tap_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__collab-tap_tokens -p)
    if test -z "$(__collab-tap_tokens -t)"
        set -l index (count (__collab-tap_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'collab-tap' -f
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap"' -l 'room' -d 'Only rooms matching this glob (repeatable); with redis://, the rooms followed.' -rfka ''
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap"' -l 'type' -d 'Only messages of types matching this glob (repeatable): op, presence, join, ...' -rfka ''
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap"' -l 'user' -d 'Only messages of users matching this glob (repeatable).' -rfka ''
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" all' -l 'all' -d 'With redis://: follow every room.'
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" raw' -l 'raw' -d 'Write each message\'s NDJSON line unchanged (for capture files).'
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" stats' -l 'stats' -d 'Show per-room rates, users and op delays every second instead of the messages.'
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" interval' -l 'interval' -d 'Seconds between two --stats reports.' -rfka ''
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" replay' -l 'replay' -d 'Write this capture to stdout with its original timing (see --speed), then exit.' -rfka ''
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" speed' -l 'speed' -d 'With --replay: how many times faster than recorded (0 or inf: as fast as possible).' -rfka ''
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" token' -l 'token' -d 'Token for a server that requires one (default: $COLLAB_TOKEN).' -rfka ''
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" max-retries' -l 'max-retries' -d 'Failed connection attempts in a row before giving up with status 69 (default: unlimited).' -rfka ''
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" strict' -l 'strict' -d 'Stop at the first bad input line with status 65.'
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" max-line' -l 'max-line' -d 'Longest accepted input line, in bytes.' -rfka ''
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" ca-file' -l 'ca-file' -d 'For wss:// URLs: also trust the CA certificates (or the server\'s own certificate) in this PEM file, besides the system\'s.' -rF
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" insecure' -l 'insecure' -d 'For wss:// URLs: accept any server certificate (self-signed, unknown CA, another host\'s name). For tests only; a warning says so.'
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" q quiet' -l 'quiet' -s 'q' -d 'No connection notes on stderr (problems are still reported).'
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_flags_or_options "collab-tap" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'collab-tap' -n '__collab-tap_should_offer_completions_for_positional "collab-tap" -eq 1' -fa 'help' -d 'Show subcommand help information.'
