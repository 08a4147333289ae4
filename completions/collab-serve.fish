function __collab-serve_should_offer_completions_for_flags_or_options -a expected_commands
    set -l non_repeating_flags_or_options $argv[2..]
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-serve_parse_tokens
    test "$commands" = "$expected_commands"; and return $non_repeating_flags_or_options_absent
end

function __collab-serve_should_offer_completions_for_positional -a expected_commands positional_index_comparison expected_positional_index
    set -l non_repeating_flags_or_options
    set -l non_repeating_flags_or_options_absent 0
    set -l positional_index 0
    set -l commands
    __collab-serve_parse_tokens
    test "$commands" = "$expected_commands" -a \( "$positional_index" "$positional_index_comparison" "$expected_positional_index" \)
end

function __collab-serve_parse_tokens -S
    set -l unparsed_tokens (__collab-serve_tokens -pc)
    switch $unparsed_tokens[1]
    case 'collab-serve'
        __collab-serve_parse_subcommand 0 'host=' 'port=' 'data=' 'max-message=' 'max-queue=' 'max-rate=' 'max-burst=' 'max-conns-per-ip=' 'ping-interval=' 'ping-timeout=' 'snapshot-every=' 'idle-unload=' 'history=' 'typing-timeout=' 'presence-interval=' 'presence-ttl=' 'redis=' 'auth-secret-file=' 'require-auth' 'auth-timeout=' 'allowed-origin=+' 'tls-cert=' 'tls-key=' 'log-level=' 'h/help'
        switch $unparsed_tokens[1]
        case 'token'
            __collab-serve_parse_subcommand 0 'user=' 'name=' 'room=+' 'read-only' 'ttl=' 'auth-secret-file=' 'h/help'
        case 'help'
            __collab-serve_parse_subcommand -r 1 
        end
    end
end

function __collab-serve_tokens
    if test (string split -m 1 -f 1 -- . "$FISH_VERSION") -gt 3
        commandline --tokens-raw $argv
    else
        commandline -o $argv
    end
end

function __collab-serve_parse_subcommand -S -a positional_count
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

function __collab-serve_complete_directories
    set -l token (commandline -t)
    string match -- '*/' $token
    set -l subdirs $token*/
    printf %s\n $subdirs
end

function __collab-serve_custom_completion
    set -x SAP_SHELL fish
    set -x SAP_SHELL_VERSION $FISH_VERSION
    set -l tokens (__collab-serve_tokens -p)
    if test -z "$(__collab-serve_tokens -t)"
        set -l index (count (__collab-serve_tokens -pc))
        set tokens $tokens[..$index] \'\' $tokens[(math $index + 1)..]
    end
    command $tokens[1] $argv $tokens
end

complete -c 'collab-serve' -f
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" host' -l 'host' -d 'Address to listen on (an IPv4 or IPv6 address, or an interface name).' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" port' -l 'port' -d 'TCP port; 0 picks a free one (the address is printed on stderr).' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" data' -l 'data' -d 'Directory of the rooms\' journals and snapshots (default: $XDG_STATE_HOME/collab, else ~/.local/state/collab). Not used with --redis.' -rfa '(__collab-serve_complete_directories)'
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" max-message' -l 'max-message' -d 'Largest message accepted from a client (bytes; K, M suffixes).' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" max-queue' -l 'max-queue' -d 'Most bytes waiting to be sent to one client before it is closed as a slow consumer (K, M suffixes).' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" max-rate' -l 'max-rate' -d 'Messages per second one connection may send, sustained (a token bucket); more are dropped with a "rate-limited" error, and a connection that keeps it up is closed (1008). 0: no limit.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" max-burst' -l 'max-burst' -d 'Messages one connection may send at once after a quiet spell (the bucket\'s size; default 5 × --max-rate).' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" max-conns-per-ip' -l 'max-conns-per-ip' -d 'WebSocket connections one peer address may hold open; more are refused with HTTP 429. 0: no limit (behind a reverse proxy, where every client has the proxy\'s address).' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" ping-interval' -l 'ping-interval' -d 'Ping a client after this many seconds of silence.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" ping-timeout' -l 'ping-timeout' -d 'Drop a client that stays silent this many seconds after a ping.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" snapshot-every' -l 'snapshot-every' -d 'Snapshot a room (and empty its journal) every N ops; 0: only at unload and shutdown. With --redis: the instance that commits every Nth op writes the room\'s snapshot to Redis (0: never).' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" idle-unload' -l 'idle-unload' -d 'Snapshot and unload a room this many seconds after its last client left (with --redis: at once).' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" history' -l 'history' -d 'Committed ops kept in memory per room for catch-up (older joins get the whole document). With --redis also what the room\'s stream keeps behind its latest snapshot.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" typing-timeout' -l 'typing-timeout' -d 'A member\'s typing flag turns off by itself this many seconds after its last update.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" presence-interval' -l 'presence-interval' -d 'Relay at most one presence update per client per this many seconds; updates in between are coalesced, the last one wins.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" presence-ttl' -l 'presence-ttl' -d 'With --redis: members of an instance that stops (crash, network) leave every roster within this many seconds.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" redis' -l 'redis' -d 'Keep the rooms\' histories in Redis (redis://[user:pass@]host:port[/db]), so several collab-serve instances serve one room with one history.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" auth-secret-file' -l 'auth-secret-file' -d 'File holding the secret that signs access tokens (at least 32 bytes). Default: the environment variable COLLAB_AUTH_SECRET.' -rF
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" require-auth' -l 'require-auth' -d 'Refuse to start without a secret (--auth-secret-file or COLLAB_AUTH_SECRET), instead of serving everyone.'
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" auth-timeout' -l 'auth-timeout' -d 'Close a connection that has not presented a valid token within this many seconds.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve"' -l 'allowed-origin' -d 'A web origin whose pages may connect (https://app.example.com, https://*.example.com, or * for any); repeat for more. Browsers send Origin, programs do not and are let through. Default: any.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" tls-cert' -l 'tls-cert' -d 'Serve wss:// and https:// with this certificate (PEM, optionally followed by its chain). Needs --tls-key.' -rF
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" tls-key' -l 'tls-key' -d 'The private key of --tls-cert (PEM, unencrypted).' -rF
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" log-level' -l 'log-level' -d 'Least severe log lines shown: error, warn, info or debug (debug adds one line per message).' -rfka 'error warn info debug'
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve" h help' -s 'h' -l 'help' -d 'Show help information.'
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_positional "collab-serve" -eq 1' -fa 'token' -d 'Print an access token for collab-serve, signed with the server\'s secret.'
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_positional "collab-serve" -eq 1' -fa 'help' -d 'Show subcommand help information.'
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve token" user' -l 'user' -d 'The user id (the token\'s sub): the user of every message its holder sends.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve token" name' -l 'name' -d 'Display name shown to the others.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve token"' -l 'room' -d 'A room the token opens: a name or a glob (docs/*, team/**); repeat for more.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve token" read-only' -l 'read-only' -d 'Receive only: the holder\'s edits are refused (perm read).'
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve token" ttl' -l 'ttl' -d 'How long the token is valid: seconds, or a number with s, m, h or d.' -rfka ''
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve token" auth-secret-file' -l 'auth-secret-file' -d 'File holding the secret that signs access tokens (at least 32 bytes). Default: the environment variable COLLAB_AUTH_SECRET.' -rF
complete -c 'collab-serve' -n '__collab-serve_should_offer_completions_for_flags_or_options "collab-serve token" h help' -s 'h' -l 'help' -d 'Show help information.'
