// How a stream's close() ends the connection (docs/reference/streams.md): an orderly end of
// stream for the peer even when its last bytes were never read, at_eof() after our own close,
// and open_connection's empty host.
#include <corio/testing.hpp>

#include "stream_support.hpp"

#include <string>
#include <system_error>

using namespace corio;
using namespace corio_test;

namespace {

// Everything `reader` gives until its end, or what it threw.
struct ReadToTheEnd {
    std::size_t bytes = 0;
    std::string error;
};

Coro<ReadToTheEnd> read_to_the_end(StreamReader& reader) {
    ReadToTheEnd out;
    try {
        for (;;) {
            Coro<std::string> reading = reader.read(65536);
            std::string data = co_await std::move(reading);
            if (data.empty()) break;
            out.bytes += data.size();
        }
    } catch (const std::exception& e) {
        out.error = e.what();
    }
    co_return out;
}

// The peer's request is in our socket, unread, when we answer and close: a server that answers
// without reading the whole request (an error page, a "too large"). The kernel answers the close
// of a socket with unread bytes with a reset, which threw away the end of the answer still on
// its way and gave the peer ECONNRESET instead of the end of stream; asyncio's transport has
// read the request ahead, and its peer gets the whole answer, then EOF.
Coro<> answer_without_reading_and_close(StreamPair& client, StreamPair& server) {
    client.second.write("request\n");
    Coro<> sending = client.second.drain();
    co_await std::move(sending);
    server.second.write(std::string(1 << 20, 'x'));  // more than the sockets hold
    server.second.close();
    Coro<ReadToTheEnd> reading = read_to_the_end(client.first);
    ReadToTheEnd got = co_await std::move(reading);
    EXPECT_EQ(got.error, "");
    EXPECT_EQ(got.bytes, std::size_t(1) << 20);
    Coro<> closed = server.second.wait_closed();
    co_await std::move(closed);
    client.second.close();
}

}  // namespace

CORIO_TEST(StreamClose, ClosingWithTheRequestUnreadEndsTheTcpAnswerWithEofNotAReset) {
    Coro<StreamLink> linking = stream_link();
    StreamLink link = co_await std::move(linking);
    Coro<> answering = answer_without_reading_and_close(link.client, link.server);
    co_await std::move(answering);
}

// A Unix stream socket closed with unread bytes sets ECONNRESET on its peer the same way.
CORIO_TEST(StreamClose, ClosingWithTheRequestUnreadEndsTheUnixAnswerWithEofNotAReset) {
    auto [a, b] = unix_socket_pair();
    StreamPair client = make_streams(std::move(a));
    StreamPair server = make_streams(std::move(b));
    Coro<> answering = answer_without_reading_and_close(client, server);
    co_await std::move(answering);
}

// asyncio: after writer.close() and wait_closed(), reader.at_eof() is true (connection_lost fed
// the end of stream); it was false until a read had found the end.
CORIO_TEST(StreamClose, AtEofIsTrueAfterOurOwnCloseAndWaitClosed) {
    auto [a, b] = unix_socket_pair();
    StreamPair ours = make_streams(std::move(a));
    ours.second.close();
    Coro<> closed = ours.second.wait_closed();
    co_await std::move(closed);
    EXPECT_TRUE(ours.first.at_eof());
    Coro<std::string> reading = ours.first.read(100);
    std::string rest = co_await std::move(reading);
    EXPECT_EQ(rest, "");
}

// asyncio.open_connection("", port) raises socket.gaierror: "" is no host to connect to. corio
// read it as 0.0.0.0, as a server does, and connected to this host.
CORIO_TEST(StreamClose, OpenConnectionToTheEmptyHostIsAnUnknownName) {
    Coro<Server> serving = serve_local(echo_handler);
    Server server = co_await std::move(serving);
    try {
        Coro<StreamPair> connecting = open_connection("", port_of(server));
        StreamPair connected = co_await std::move(connecting);
        ADD_FAILURE() << "open_connection(\"\") connected";
        connected.second.close();
    } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().category(), gai_category()) << e.what();
    }
    server.close();
    Coro<> closed = server.wait_closed();
    co_await std::move(closed);
}
