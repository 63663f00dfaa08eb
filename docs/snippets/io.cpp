// Streams and servers, subprocesses, signals: the asyncio names, briefly.
#include <corio/corio.hpp>

#include <csignal>
#include <cstdint>
#include <iostream>
#include <string>
#include <vector>

using namespace std::chrono_literals;

// [echo-server]
corio::Coro<> handle_client(corio::StreamReader reader, corio::StreamWriter writer) {
    std::string line = co_await reader.readline();
    writer.write(line);  // echo it back
    co_await writer.drain();
    writer.close();
    co_await writer.wait_closed();
}

corio::Coro<std::string> echo_once() {
    corio::Server server = co_await corio::start_server(handle_client, "127.0.0.1", 0);  // 0: any free port
    std::uint16_t port = server.sockets()[0].getsockname().port();

    corio::StreamPair connection = co_await corio::open_connection("127.0.0.1", port);
    auto& [reader, writer] = connection;
    writer.write("hello\n");
    co_await writer.drain();
    std::string reply = co_await reader.readline();  // "hello\n"
    writer.close();
    co_await writer.wait_closed();

    server.close();
    co_await server.wait_closed();
    co_return reply;
}
// [end echo-server]

// [subprocess]
corio::Coro<std::string> shout(std::string text) {
    std::vector<std::string> argv{"tr", "a-z", "A-Z"};  // a named local, not a braced list in the call
    corio::SubprocessOptions pipes{.in = corio::PIPE, .out = corio::PIPE};  // named too (g++ 12)
    corio::Process p = co_await corio::create_subprocess_exec(argv, pipes);
    std::pair<std::string, std::string> output = co_await p.communicate(text);  // (stdout, stderr)
    int code = co_await p.wait();  // 0; -N if signal N ended it
    co_return code == 0 ? output.first : "";
}
// [end subprocess]

// [signals]
corio::Coro<> wait_for_sighup() {
    corio::EventLoop& loop = corio::get_running_loop();
    corio::Event reload;
    // The handler runs on the loop's thread, not inside the signal handler: anything goes.
    loop.add_signal_handler(SIGHUP, [&reload] { reload.set(); });
    co_await reload.wait();
    loop.remove_signal_handler(SIGHUP);
}
// [end signals]

corio::Coro<int> main_coro() {
    std::string reply = co_await echo_once();
    std::string loud = co_await shout("hello\n");
    corio::get_running_loop().call_later(10ms, [] { std::raise(SIGHUP); });
    co_await corio::wait_for(wait_for_sighup(), 5s);
    std::cout << "echo: " << reply << "tr: " << loud << "SIGHUP handled\n";
    co_return reply == "hello\n" && loud == "HELLO\n" ? 0 : 1;
}

int main() { return corio::run(main_coro()); }
