function __collab-bridge_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-bridge_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __collab-bridge_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-bridge_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __collab-bridge_parse_tokens -S
    set -l unparsed_tokens (__collab-bridge_tokens -pc)
    switch $unparsed_tokens[1]
    case 'collab-bridge'
        __collab-bridge_parse_subcommand 1 'room=+' 'all' 'history' 'since=' 'commit' 'follow' 'user=' 'client=' 'max-retries=' 'strict' 'max-line=' 'q/quiet' 'h/help'
        switch $unparsed_tokens[1]
        case 'help'
            __collab-bridge_parse_subcommand -r 1 
        end
    end
end

function __collab-bridge_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __collab-bridge_parse_subcommand -S -a positional_count
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

function __collab-bridge_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __collab-bridge_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__collab-bridge_tokens -p)
    if test -z "$(__collab-bridge_tokens -t)"
        set -l index (count (__collab-bridge_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'collab-bridge' -f
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge"' -l 'room' -d 'A room to follow and publish to (repeatable).' -rfka ''
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge" all' -l 'all' -d 'Follow every room (pattern subscription); lines on stdin must carry "room".'
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge" history' -l 'history' -d 'First write the room\'s committed ops from the stream, then follow live without gap or duplicate.'
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge" since' -l 'since' -d 'With --history: start after this revision.' -rfka ''
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge" commit' -l 'commit' -d 'Commit op lines from stdin (otherwise they are rejected); print an ack line for each.'
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge" follow' -l 'follow' -d 'Keep following after end of input, until a signal.'
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge" user' -l 'user' -d 'User stamped on published lines and committed ops that have none.' -rfka ''
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge" client' -l 'client' -d 'Client id of committed ops whose line has none (default: bridge-PID).' -rfka ''
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge" max-retries' -l 'max-retries' -d 'Failed connection attempts in a row before giving up with status 69 (default: unlimited).' -rfka ''
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge" strict' -l 'strict' -d 'Stop at the first bad input line and exit 65 once the lines before it are answered.'
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge" max-line' -l 'max-line' -d 'Longest accepted input line, in bytes.' -rfka ''
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge" q quiet' -l 'quiet' -s 'q' -d 'No connection notes on stderr (problems are still reported).'
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_flags_or_options "collab-bridge" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'collab-bridge' -n '__collab-bridge_should_offer_completions_for_positional "collab-bridge" -eq 1' -fa 'help' -d 'Show subcommand help information.'
