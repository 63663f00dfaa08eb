// corio-ps: what a running corio program's tasks are doing (python -m asyncio ps / pstree).
//
//   corio-ps PID            a table: each task, its state, age, time on the loop, what it awaits
//   corio-ps pstree PID     who awaits whom, with each task's coroutine stack; flags cycles
//   corio-ps json PID       the same data for other tools
//
// PID may also be PID-N, the loop served at corio-PID-N.sock (the second and later loops of a
// process that introspects several at once, as run_loops does), or the socket's path itself.
//
// The program must run with introspection on (CORIO_INTROSPECT=1 or RunOptions::introspect).
#include <corio/corio.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

namespace {

corio::Coro<int> ask(std::string path, std::string command) {
    auto [reader, writer] = co_await corio::open_unix_connection(path);
    writer.write(command + "\n");
    co_await writer.drain();
    std::string answer = co_await reader.read(-1);
    std::cout << answer;
    writer.close();
    co_return 0;
}

int usage() {
    std::fprintf(stderr, "usage: corio-ps [ps|pstree|json] PID|PID-N|SOCKET-PATH\n");
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    std::string command = "ps";
    const char* pid = nullptr;
    if (argc == 2) {
        pid = argv[1];
    } else if (argc == 3) {
        command = argv[1];
        pid = argv[2];
    } else {
        return usage();
    }
    if (command != "ps" && command != "pstree" && command != "json") return usage();
    std::string path;
    if (std::strchr(pid, '/')) {
        path = pid;
    } else {
        char* end = nullptr;
        long n = std::strtol(pid, &end, 10);
        if (!end || n <= 0) return usage();
        path = corio::introspection_socket_path(n);
        if (*end == '-') {  // corio-PID-N.sock
            char* index_end = nullptr;
            long index = std::strtol(end + 1, &index_end, 10);
            if (!index_end || *index_end || index <= 0) return usage();
            std::string suffix = "-";  // (not "-" + to_string: g++ 12's false -Wrestrict)
            suffix += std::to_string(index);
            path.insert(path.size() - 5, suffix);
        } else if (*end) {
            return usage();
        }
    }
    try {
        corio::RunOptions options;
        options.handle_sigint = false;
        return corio::run(ask(path, command), std::move(options));
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "corio-ps: cannot reach %s: %s\n(is the program running with CORIO_INTROSPECT=1?)\n",
                     path.c_str(), e.code().message().c_str());
        return 1;
    }
}
