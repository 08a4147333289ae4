function __collab-join_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-join_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __collab-join_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-join_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __collab-join_parse_tokens -S
    set -l unparsed_tokens (__collab-join_tokens -pc)
    switch $unparsed_tokens[1]
    case 'collab-join'
        __collab-join_parse_subcommand -r 1 'user=' 'name=' 'token=' 'snapshot' 'listen' 'max-retries=' 'drain-timeout=' 'strict' 'max-line=' 'ca-file=' 'insecure' 'q/quiet' 'h/help'
        switch $unparsed_tokens[1]
        case 'help'
            __collab-join_parse_subcommand -r 1 
        end
    end
end

function __collab-join_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __collab-join_parse_subcommand -S -a positional_count
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

function __collab-join_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __collab-join_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__collab-join_tokens -p)
    if test -z "$(__collab-join_tokens -t)"
        set -l index (count (__collab-join_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'collab-join' -f
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" user' -l 'user' -d 'User name sent to the room (default: $USER, else anonymous).' -rfka ''
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" name' -l 'name' -d 'Display name shown to the others.' -rfka ''
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" token' -l 'token' -d 'Token for a server that requires one (default: $COLLAB_TOKEN).' -rfka ''
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" snapshot' -l 'snapshot' -d 'Print the room\'s document text exactly (nothing added) and exit.'
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" listen' -l 'listen' -d 'Do not read stdin: stay in the room and print its traffic until interrupted.'
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" max-retries' -l 'max-retries' -d 'Reconnection attempts after a failure (to any of the URLs) before giving up with status 69 (default: unlimited).' -rfka ''
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" drain-timeout' -l 'drain-timeout' -d 'Seconds to wait at end of input for the server to acknowledge every local edit.' -rfka ''
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" strict' -l 'strict' -d 'Stop at the first bad input line: deliver the edits accepted so far, then exit 65.'
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" max-line' -l 'max-line' -d 'Longest accepted input line, in bytes.' -rfka ''
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" ca-file' -l 'ca-file' -d 'For wss:// URLs: also trust the CA certificates (or the server\'s own certificate) in this PEM file, besides the system\'s.' -rF
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" insecure' -l 'insecure' -d 'For wss:// URLs: accept any server certificate (self-signed, unknown CA, another host\'s name). For tests only; a warning says so.'
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" q quiet' -l 'quiet' -s 'q' -d 'No connection logs on stderr (problems are still reported).'
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_flags_or_options "collab-join" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'collab-join' -n '__collab-join_should_offer_completions_for_positional "collab-join" -eq 1' -fa 'help' -d 'Show subcommand help information.'
