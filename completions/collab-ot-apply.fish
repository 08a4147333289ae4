function __collab-ot-apply_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-ot-apply_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __collab-ot-apply_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-ot-apply_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __collab-ot-apply_parse_tokens -S
    set -l unparsed_tokens (__collab-ot-apply_tokens -pc)
    switch $unparsed_tokens[1]
    case 'collab-ot-apply'
        __collab-ot-apply_parse_subcommand 0 'h/help'
        switch $unparsed_tokens[1]
        case 'apply'
            __collab-ot-apply_parse_subcommand 0 'doc=' 'text=' 'follow' 'strict' 'max-line=' 'h/help'
        case 'transform'
            __collab-ot-apply_parse_subcommand 2 'side=' 'h/help'
        case 'compose'
            __collab-ot-apply_parse_subcommand 2 'h/help'
        case 'invert'
            __collab-ot-apply_parse_subcommand 1 'doc=' 'text=' 'h/help'
        case 'sequence'
            __collab-ot-apply_parse_subcommand 0 'doc=' 'text=' 'room=' 'strict' 'max-line=' 'h/help'
        case 'replay'
            __collab-ot-apply_parse_subcommand 1 'ops' 'room=' 'progress' 'no-progress' 'h/help'
        case 'help'
            __collab-ot-apply_parse_subcommand -r 1 
        end
    end
end

function __collab-ot-apply_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __collab-ot-apply_parse_subcommand -S -a positional_count
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

function __collab-ot-apply_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __collab-ot-apply_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__collab-ot-apply_tokens -p)
    if test -z "$(__collab-ot-apply_tokens -t)"
        set -l index (count (__collab-ot-apply_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'collab-ot-apply' -f
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_positional "collab-ot-apply" -eq 1' -fa 'apply' -d 'Apply the op lines of stdin to a document; write the document at EOF.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_positional "collab-ot-apply" -eq 1' -fa 'transform' -d 'Print OP rebased onto AGAINST (both made on the same document).'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_positional "collab-ot-apply" -eq 1' -fa 'compose' -d 'Print the single op equal to applying A, then B.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_positional "collab-ot-apply" -eq 1' -fa 'invert' -d 'Print the op that undoes OP, given the document OP applies to.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_positional "collab-ot-apply" -eq 1' -fa 'sequence' -d 'Run the server\'s sequencer over op lines: write each committed op with its rev.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_positional "collab-ot-apply" -eq 1' -fa 'replay' -d 'Replay an editing trace (.json or .json.gz) and write the final document.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_positional "collab-ot-apply" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply apply" doc' -l 'doc' -d 'Read the starting document from FILE.' -rfka ''
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply apply" text' -l 'text' -d 'Use TEXT as the starting document.' -rfka ''
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply apply" follow' -l 'follow' -d 'After every change write {"type":"snapshot","rev":N,"doc":...} instead of the document at EOF.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply apply" strict' -l 'strict' -d 'Stop at the first bad input line with exit status 65 (default: report it on stderr and go on).'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply apply" max-line' -l 'max-line' -d 'Longest accepted input line, in bytes.' -rfka ''
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply apply" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply transform" side' -l 'side' -d 'Which op wins ties between inserts at the same position: left (OP) or right (AGAINST).' -rfka 'left right'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply transform" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply compose" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply invert" doc' -l 'doc' -d 'Read the starting document from FILE.' -rfka ''
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply invert" text' -l 'text' -d 'Use TEXT as the starting document.' -rfka ''
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply invert" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply sequence" doc' -l 'doc' -d 'Read the starting document from FILE.' -rfka ''
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply sequence" text' -l 'text' -d 'Use TEXT as the starting document.' -rfka ''
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply sequence" room' -l 'room' -d 'Room name to stamp on output ops that carry none.' -rfka ''
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply sequence" strict' -l 'strict' -d 'Stop at the first bad input line with exit status 65 (default: report it on stderr and go on).'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply sequence" max-line' -l 'max-line' -d 'Longest accepted input line, in bytes.' -rfka ''
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply sequence" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_positional "collab-ot-apply replay" -eq 1' -fa '(set -l exts \'json\' \'gz\';for p in (string match -e -- \'*/\' (commandline -t);or printf \n)*.{$exts};printf %s\n $p;end;__fish_complete_directories (commandline -t) \'\')'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply replay" ops' -l 'ops' -d 'Write the committed ops as NDJSON op messages (with rev) instead of the final document.'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply replay" room' -l 'room' -d 'With --ops: room name to put on each op.' -rfka ''
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply replay" progress' -l 'progress' -d 'Show progress on stderr (default: only when stderr is a terminal).'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply replay" no-progress' -l 'no-progress' -d 'Show progress on stderr (default: only when stderr is a terminal).'
complete -c 'collab-ot-apply' -n '__collab-ot-apply_should_offer_completions_for_flags_or_options "collab-ot-apply replay" h help' -s 'h' -l 'help' -d 'Show help information.'
