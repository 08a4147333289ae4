function __collab-bench_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-bench_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __collab-bench_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-bench_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __collab-bench_parse_tokens -S
    set -l unparsed_tokens (__collab-bench_tokens -pc)
    switch $unparsed_tokens[1]
    case 'collab-bench'
        __collab-bench_parse_subcommand -r 1 'rooms=' 'clients=' 'active=' 'rate=' 'duration=' 'warmup=' 'drain-timeout=' 'connect-timeout=' 'connecting=' 'room-prefix=' 'server-pid=+' 'token=' 'seed=' 'ops-csv=' 'ca-file=' 'insecure' 'json' 'q/quiet' 'h/help'
        switch $unparsed_tokens[1]
        case 'help'
            __collab-bench_parse_subcommand -r 1 
        end
    end
end

function __collab-bench_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __collab-bench_parse_subcommand -S -a positional_count
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

function __collab-bench_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __collab-bench_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__collab-bench_tokens -p)
    if test -z "$(__collab-bench_tokens -t)"
        set -l index (count (__collab-bench_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'collab-bench' -f
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" rooms' -l 'rooms' -d 'Rooms to spread the clients over (client i joins room i mod N).' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" clients' -l 'clients' -d 'Connections to open and hold.' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" active' -l 'active' -d 'How many of the clients send ops (the first N; the rest only receive; default 10, or all clients when fewer).' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" rate' -l 'rate' -d 'Ops per second per active client (open loop).' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" duration' -l 'duration' -d 'Seconds measured.' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" warmup' -l 'warmup' -d 'Seconds of load before the measured window (not measured).' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" drain-timeout' -l 'drain-timeout' -d 'Seconds to wait after the window for every op to be acknowledged and delivered.' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" connect-timeout' -l 'connect-timeout' -d 'Give up (status 69) when no client joins for this many seconds while connecting.' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" connecting' -l 'connecting' -d 'Connections being opened at once (each waits for its welcome).' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" room-prefix' -l 'room-prefix' -d 'Rooms are PREFIX-0, PREFIX-1, ...; client ids PREFIX-c0, ... (default: bench- and 6 random hex digits, fresh rooms each run).' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench"' -l 'server-pid' -d 'A server process to measure (CPU per delivery, RSS) from /proc; repeat for several.' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" token' -l 'token' -d 'Token for a server that requires one (default: $COLLAB_TOKEN).' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" seed' -l 'seed' -d 'Seed of the random insert positions.' -rfka ''
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" ops-csv' -l 'ops-csv' -d 'Also write one CSV line per measured op that reached its whole room: writer, seq, rev, and its reference time, ack, first and last receipt in microseconds of CLOCK_MONOTONIC (to see how slow ops cluster, and line them up with perf record -k mono).' -rF
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" ca-file' -l 'ca-file' -d 'For wss:// URLs: also trust the CA certificates (or the server\'s own certificate) in this PEM file, besides the system\'s.' -rF
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" insecure' -l 'insecure' -d 'For wss:// URLs: accept any server certificate (self-signed, unknown CA, another host\'s name). For tests only; a warning says so.'
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" json' -l 'json' -d 'Write one JSON object instead of the table.'
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" q quiet' -l 'quiet' -s 'q' -d 'No progress lines on stderr (problems are still reported).'
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_flags_or_options "collab-bench" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'collab-bench' -n '__collab-bench_should_offer_completions_for_positional "collab-bench" -eq 1' -fa 'help' -d 'Show subcommand help information.'
