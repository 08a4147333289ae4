function __collab-presence_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-presence_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __collab-presence_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-presence_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __collab-presence_parse_tokens -S
    set -l unparsed_tokens (__collab-presence_tokens -pc)
    switch $unparsed_tokens[1]
    case 'collab-presence'
        __collab-presence_parse_subcommand 1 'table' 'once' 'room=' 'typing-timeout=' 'clock=' 'strict' 'max-line=' 'h/help'
        switch $unparsed_tokens[1]
        case 'help'
            __collab-presence_parse_subcommand -r 1 
        end
    end
end

function __collab-presence_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __collab-presence_parse_subcommand -S -a positional_count
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

function __collab-presence_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __collab-presence_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__collab-presence_tokens -p)
    if test -z "$(__collab-presence_tokens -t)"
        set -l index (count (__collab-presence_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'collab-presence' -f
complete -c 'collab-presence' -n '__collab-presence_should_offer_completions_for_positional "collab-presence" -eq 1' -fa '(set -l exts \'ndjson\' \'jsonl\' \'json\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'collab-presence' -n '__collab-presence_should_offer_completions_for_flags_or_options "collab-presence" table' -l 'table' -d 'A live table on a terminal; one roster snapshot line per change elsewhere.'
complete -c 'collab-presence' -n '__collab-presence_should_offer_completions_for_flags_or_options "collab-presence" once' -l 'once' -d 'Write nothing until the input ends, then the roster of each room (the table with --table).'
complete -c 'collab-presence' -n '__collab-presence_should_offer_completions_for_flags_or_options "collab-presence" room' -l 'room' -d 'Only this room (default: every room in the stream, each with its roster).' -rfka ''
complete -c 'collab-presence' -n '__collab-presence_should_offer_completions_for_flags_or_options "collab-presence" typing-timeout' -l 'typing-timeout' -d 'Seconds typing lasts without an update saying so again.' -rfka ''
complete -c 'collab-presence' -n '__collab-presence_should_offer_completions_for_flags_or_options "collab-presence" clock' -l 'clock' -d 'Time for typing expiry and idle times: arrival (wall clock when a line is read) or stream (the latest ts in the input). Default: stream for a file, arrival otherwise.' -rfka 'arrival stream'
complete -c 'collab-presence' -n '__collab-presence_should_offer_completions_for_flags_or_options "collab-presence" strict' -l 'strict' -d 'Stop at the first bad input line with exit status 65 (default: report it on stderr and go on).'
complete -c 'collab-presence' -n '__collab-presence_should_offer_completions_for_flags_or_options "collab-presence" max-line' -l 'max-line' -d 'Longest accepted input line, in bytes.' -rfka ''
complete -c 'collab-presence' -n '__collab-presence_should_offer_completions_for_flags_or_options "collab-presence" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'collab-presence' -n '__collab-presence_should_offer_completions_for_positional "collab-presence" -eq 2' -fa 'help' -d 'Show subcommand help information.'
