// Network faults over loopback: a peer that resets or closes the connection (reads, writes,
// drains and wait_closed() meeting it), and data that must arrive intact (a slow reader, signals
// interrupting the loop). Each gives a clear std::system_error (or the asyncio-named error),
// never kills the process, and leaks no fd and no backend operation. Refused connections and
// exhausted resources are in test_net_fault_resources.cpp.
#include <corio/streams.hpp>
#include <corio/testing.hpp>

#include "net_support.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <optional>
#include <string>
#include <vector>

using namespace corio;
using namespace std::chrono_literals;
using corio_test::os_error_of;
using corio_test::open_fds;
using corio_test::settle;
using corio_test::skip_test;
using corio_test::without_leaks;

namespace {

bool is_reset_or_pipe(int code) { return code == ECONNRESET || code == EPIPE; }

// Both ends of a loopback connection: streams on our side, the raw accepted socket on the
// peer's, so that the test can misbehave as a peer (reset, close, read slowly).
struct RawLink {
    StreamPair ours;
    Socket peer;
};

Coro<RawLink> raw_link(int peer_rcvbuf = 0) {
    Socket listener = Socket::create(AF_INET, SOCK_STREAM);
    if (peer_rcvbuf) listener.set_option(SOL_SOCKET, SO_RCVBUF, peer_rcvbuf);
    listener.bind(SocketAddress("127.0.0.1", 0));
    listener.listen();
    Coro<StreamPair> connecting = open_connection("127.0.0.1", listener.getsockname().port());
    StreamPair ours = co_await std::move(connecting);
    std::pair<Socket, SocketAddress> accepted = co_await sock_accept(listener);
    RawLink link{std::move(ours), std::move(accepted.first)};
    co_return link;
}

// Closes with an RST instead of a FIN (SO_LINGER with a zero timeout).
void reset(Socket& s) {
    ::linger hard{1, 0};
    ::setsockopt(s.fileno(), SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
    s.close();
}

}  // namespace

CORIO_TEST(NetFaults, PeerResetIsConnectionResetOrEof) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        reset(link.peer);
        std::optional<std::string> data;
        std::optional<std::system_error> error;
        try {
            Coro<std::string> reading = link.ours.first.read(100);
            data = co_await std::move(reading);
        } catch (const std::system_error& e) {
            error = e;
        }
        // Linux reports the RST as ECONNRESET; a kernel that reports EOF instead is fine too.
        if (error) {
            EXPECT_EQ(error->code().value(), ECONNRESET) << error->what();
            // As asyncio's reader keeps its exception(): every later read throws it again
            // (never a clean EOF, which would pass a truncated stream off as complete).
            EXPECT_FALSE(link.ours.first.at_eof());
            EXPECT_TRUE(link.ours.first.exception() != nullptr);
            CO_CATCH(std::system_error, again, link.ours.first.read(-1));
            EXPECT_TRUE(again.has_value());
            if (again) {
                EXPECT_EQ(again->code().value(), ECONNRESET);
            }
        } else {
            EXPECT_EQ(data, "");
            EXPECT_TRUE(link.ours.first.at_eof());
            std::string after = co_await link.ours.first.read(-1);
            EXPECT_EQ(after, "");
        }
        link.ours.second.close();
        co_await link.ours.second.wait_closed();
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

// asyncio's _force_close: a connection lost to an error closes the transport. wait_closed()
// returned only after the application's own close(), so a task watching it waited for ever and
// the fd stayed open.
CORIO_TEST(NetFaults, AConnectionLostToAResetIsClosed) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        reset(link.peer);
        CO_CATCH(std::system_error, error, link.ours.first.read(100));
        if (!error) co_return;  // a kernel that reports the RST as EOF: nothing was lost
        EXPECT_TRUE(link.ours.second.is_closing());
        // Writes after the loss are dropped, as asyncio's are; drain() reports the error (they
        // threw logic_error "write() after close()", as if the application had closed it).
        link.ours.second.write("first");
        link.ours.second.write("second");
        CO_CATCH(std::system_error, drained, link.ours.second.drain());
        EXPECT_TRUE(drained.has_value());
        auto closed = wait_for(link.ours.second.wait_closed(), 10s);
        co_await std::move(closed);  // without close(): the connection is gone
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

// Once a write has met the reset (taking the kernel's pending error), the reader still sees the
// reset, not an end of stream after the bytes that came before it: a truncated message must
// not pass for a complete one (asyncio: every later read raises ConnectionResetError).
CORIO_TEST(NetFaults, AResetMetByAWriteIsNotAnEndOfStreamForTheReader) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        auto sending = sock_sendall(link.peer, "first half of a messa");
        co_await std::move(sending);
        reset(link.peer);
        link.ours.second.write("request");
        CO_CATCH(std::system_error, drained, link.ours.second.drain());
        if (!drained) co_return;  // the write went out before the reset was seen: nothing to check
        EXPECT_TRUE(is_reset_or_pipe(drained->code().value())) << drained->what();
        CO_CATCH(std::system_error, read_error, link.ours.first.read(-1));
        EXPECT_TRUE(read_error.has_value()) << "the reset read as a clean end of stream";
        EXPECT_FALSE(link.ours.first.at_eof());
        auto closed = wait_for(link.ours.second.wait_closed(), 10s);
        co_await std::move(closed);
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

CORIO_TEST(NetFaults, PeerResetWhileAReadIsPending) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        Coro<std::string> reading = link.ours.first.readline();
        Task<std::string> blocked = create_task(std::move(reading));
        co_await sleep(0ms);
        co_await sleep(0ms);
        EXPECT_FALSE(blocked.done());
        reset(link.peer);
        std::optional<std::string> line;
        std::optional<std::system_error> error;
        try {
            Coro<std::string> bounded = wait_for(blocked, 10s);
            line = co_await std::move(bounded);
        } catch (const std::system_error& e) {
            error = e;
        }
        if (error) {
            EXPECT_EQ(error->code().value(), ECONNRESET);
        } else {
            EXPECT_EQ(line, "");
        }
        link.ours.second.close();
        co_await link.ours.second.wait_closed();
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

CORIO_TEST(NetFaults, PeerClosingMidReadexactlyIsIncompleteRead) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        Coro<std::string> exact = link.ours.first.readexactly(10);
        Task<std::string> reading = create_task(std::move(exact));
        Coro<> sending = sock_sendall(link.peer, std::string("12345"));
        co_await std::move(sending);
        co_await sleep(0ms);
        co_await sleep(0ms);
        EXPECT_FALSE(reading.done());
        link.peer.close();  // an orderly FIN, mid-message
        CO_CATCH(IncompleteReadError, incomplete, reading);
        CO_ASSERT_TRUE(incomplete.has_value());
        EXPECT_EQ(incomplete->partial, "12345");
        EXPECT_EQ(incomplete->expected, 10u);
        link.ours.second.close();
        co_await link.ours.second.wait_closed();
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

CORIO_TEST(NetFaults, PeerResetAfterABurstGivesAPrefixOfItThenTheError) {
    // Reads may take more than the caller's buffer (the rest waits in the reader's buffer):
    // whatever arrived before the reset comes back in order and nothing else, then the error
    // (or the end), and the stream reads as ended afterwards.
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        std::string payload(512 * 1024, '\0');
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = char((i * 131 + i / 4099) % 251);
        std::size_t sent = 0;
        while (sent < payload.size()) {  // what the kernel takes without waiting
            ssize_t n = ::send(link.peer.fileno(), payload.data() + sent, payload.size() - sent, MSG_DONTWAIT);
            if (n <= 0) break;
            sent += std::size_t(n);
        }
        EXPECT_GT(sent, 0u);
        reset(link.peer);
        auto& reader = link.ours.first;
        std::string got;
        std::optional<std::system_error> error;
        std::vector<char> buf(1000);
        try {
            for (;;) {
                Coro<std::size_t> reading = reader.read_into(buf);
                std::size_t n = co_await std::move(reading);
                if (n == 0) break;
                got.append(buf.data(), n);
            }
        } catch (const std::system_error& e) {
            error = e;
        }
        EXPECT_LE(got.size(), sent);
        EXPECT_TRUE(got == payload.substr(0, got.size())) << "bytes out of order or invented";
        if (error) {
            EXPECT_EQ(error->code().value(), ECONNRESET) << error->what();
            EXPECT_FALSE(reader.at_eof());
            CO_CATCH(std::system_error, again, reader.read(-1));
            EXPECT_TRUE(again.has_value());
            if (again) {
                EXPECT_EQ(again->code().value(), ECONNRESET);
            }
        } else {
            EXPECT_TRUE(reader.at_eof());
            std::string after = co_await reader.read(-1);
            EXPECT_EQ(after, "");
        }
        link.ours.second.close();
        co_await link.ours.second.wait_closed();
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

CORIO_TEST(NetFaults, WritingToAClosedPeerFailsDrainWithoutSigpipe) {
    // Take away the library's process-wide SIG_IGN for this test: if any socket write lacked
    // MSG_NOSIGNAL, SIGPIPE would now kill the test process.
    struct sigaction dfl {}, previous {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGPIPE, &dfl, &previous);
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        link.peer.close();
        auto& writer = link.ours.second;
        std::optional<std::system_error> error;
        std::string chunk(64 * 1024, 'w');
        // The first write may still be accepted by the kernel; the peer answers it with an
        // RST, and from then on writes fail.
        for (int i = 0; i < 100 && !error; ++i) {
            try {
                writer.write(chunk);
                Coro<> draining = writer.drain();
                co_await std::move(draining);
            } catch (const std::system_error& e) {
                error = e;
            }
        }
        CO_ASSERT_TRUE(error.has_value());
        EXPECT_TRUE(is_reset_or_pipe(error->code().value())) << error->what();
        // The error sticks: drain() keeps reporting it.
        CO_CATCH(std::system_error, again, writer.drain());
        EXPECT_TRUE(again.has_value());
        writer.close();
        Coro<> closed = wait_for(writer.wait_closed(), 10s);
        co_await std::move(closed);
    };
    Coro<> checked = without_leaks(scenario);
    std::exception_ptr failure;
    try {
        co_await std::move(checked);
    } catch (...) {
        failure = std::current_exception();
    }
    ::sigaction(SIGPIPE, &previous, nullptr);
    if (failure) std::rethrow_exception(failure);
}

CORIO_TEST(NetFaults, WritingToAResetPeerFailsDrain) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        reset(link.peer);
        auto& writer = link.ours.second;
        std::optional<std::system_error> error;
        for (int i = 0; i < 100 && !error; ++i) {
            try {
                writer.write("after the reset\n");
                Coro<> draining = writer.drain();
                co_await std::move(draining);
            } catch (const std::system_error& e) {
                error = e;
            }
            co_await sleep(0ms);
        }
        CO_ASSERT_TRUE(error.has_value());
        EXPECT_TRUE(is_reset_or_pipe(error->code().value())) << error->what();
        writer.close();
        Coro<> closed = wait_for(writer.wait_closed(), 10s);
        co_await std::move(closed);
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

namespace {
Coro<std::string> read_100(StreamReader r) {
    std::string got = co_await r.read(100);
    co_return got;
}
Coro<> drain_of(StreamWriter w) {
    Coro<> draining = w.drain();
    co_await std::move(draining);
}
}  // namespace

// A reset while a read and a drain wait: the kernel gives ECONNRESET to the first call and EPIPE
// to the writes after it. Whichever completion the transport sees first, the reader, drain()
// and exception() all report the reset, as asyncio's do (its reader meets it), not the broken
// pipe the write was left with.
CORIO_TEST(NetFaults, AResetWhileReadingAndDrainingIsConnectionResetForBoth) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        auto& [reader, writer] = link.ours;
        writer.set_write_buffer_limits(1000);
        writer.write(std::string(8 << 20, 'x'));  // the peer never reads: the write waits
        Task<std::string> reading = create_task(read_100(reader));
        Task<> draining = create_task(drain_of(writer));
        co_await settle();
        reset(link.peer);
        std::exception_ptr drain_error, read_error;
        try {
            co_await draining;
        } catch (...) {
            drain_error = std::current_exception();
        }
        try {
            co_await reading;
        } catch (...) {
            read_error = std::current_exception();
        }
        EXPECT_EQ(os_error_of(drain_error), ECONNRESET);
        EXPECT_EQ(os_error_of(read_error), ECONNRESET);
        EXPECT_EQ(os_error_of(reader.exception()), ECONNRESET);
        writer.close();
        Coro<> closed = wait_for(writer.wait_closed(), 10s);
        co_await std::move(closed);
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

CORIO_TEST(NetFaults, EightMegabytesToASlowReaderArriveIntact) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link(/*peer_rcvbuf=*/16 * 1024);
        StreamPair peer = make_streams(std::move(link.peer));
        auto& writer = link.ours.second;
        std::string payload(8 * 1024 * 1024, '\0');
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = char((i * 131 + i / 4099) % 251);
        writer.write(payload);
        // The kernel took only part of it: the rest waits in the writer's buffer.
        EXPECT_GT(writer.get_write_buffer_size(), 0u);
        EXPECT_LT(writer.get_write_buffer_size(), payload.size());
        Coro<> draining_coro = writer.drain();
        Task<> draining = create_task(std::move(draining_coro));
        // The slow reader: small reads, a loop tick between them.
        std::string got;
        got.reserve(payload.size());
        std::size_t reads = 0;
        while (got.size() < payload.size()) {
            Coro<std::string> reading = peer.first.read(4096);
            std::string piece = co_await std::move(reading);
            CO_ASSERT_FALSE(piece.empty());
            got += piece;
            ++reads;
            co_await sleep(0ms);
        }
        co_await draining;
        EXPECT_GE(reads, payload.size() / 4096);
        EXPECT_TRUE(got == payload);
        writer.close();
        co_await writer.wait_closed();
        std::string eof = co_await peer.first.read(-1);
        EXPECT_EQ(eof, "");
        peer.second.close();
        co_await peer.second.wait_closed();
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

namespace {
extern "C" void ignore_signal(int) {}
}  // namespace

CORIO_TEST(NetFaults, SignalsInterruptingTheLoopLoseNoData) {
    // EINTR: a handler installed without SA_RESTART makes epoll_wait (and any blocking call)
    // fail with EINTR; signals keep arriving from another thread during an 8 MiB round trip.
    struct sigaction plain {}, saved1 {}, saved2 {};
    plain.sa_handler = &ignore_signal;
    sigemptyset(&plain.sa_mask);
    plain.sa_flags = 0;  // no SA_RESTART
    ::sigaction(SIGUSR2, &plain, &saved2);
    // Also under the loop's SIGUSR1 handler, so that removing that one leaves a harmless
    // handler (not the default action, which would end the process) for stragglers.
    ::sigaction(SIGUSR1, &plain, &saved1);
    EventLoop& loop = get_running_loop();
    int loop_handler_runs = 0;
    loop.add_signal_handler(SIGUSR1, [&] { ++loop_handler_runs; });
    std::atomic<bool> done{false};
    std::atomic<int> sent{0};
    std::thread storm([&] {
        while (!done.load() && sent.load() < 20000) {
            ::kill(::getpid(), sent.load() % 2 ? SIGUSR1 : SIGUSR2);
            ++sent;
            std::this_thread::sleep_for(std::chrono::microseconds(100));  // a load generator, not a sync
        }
    });
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        StreamPair peer = make_streams(std::move(link.peer));
        std::string payload(8 * 1024 * 1024, '\0');
        for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = char((i * 7 + i / 65521) % 256);
        auto echo = [](StreamPair p) -> Coro<> {
            for (;;) {
                std::string data = co_await p.first.read(65536);
                if (data.empty()) break;
                p.second.write(data);
                co_await p.second.drain();
            }
            p.second.close();
            co_await p.second.wait_closed();
        };
        Task<> echoing = create_task(echo(peer));
        auto& [reader, writer] = link.ours;
        auto sending = [&]() -> Coro<> {
            writer.write(payload);
            co_await writer.drain();
            writer.write_eof();
        };
        Task<> sender = create_task(sending());
        std::string back = co_await reader.read(-1);
        co_await sender;
        co_await echoing;
        EXPECT_TRUE(back == payload) << back.size() << " of " << payload.size() << " bytes came back";
        writer.close();
        co_await writer.wait_closed();
    };
    // The storm must be on before the round trip starts: on a loaded machine its thread was not
    // scheduled before the 8 MiB had gone and come back, and sent nothing. Bounded, in real time.
    for (int i = 0; i < 10000 && loop_handler_runs == 0; ++i) {
        auto pause = sleep(std::chrono::milliseconds(1));
        co_await std::move(pause);
    }
    Coro<> checked = without_leaks(scenario);
    std::exception_ptr failure;
    try {
        co_await std::move(checked);
    } catch (...) {
        failure = std::current_exception();
    }
    done = true;
    storm.join();
    loop.remove_signal_handler(SIGUSR1);
    // A process-directed signal may still wait to be taken by some thread: restore the default
    // actions only once none is pending (bounded).
    for (int i = 0; i < 100000; ++i) {
        sigset_t pending;
        ::sigpending(&pending);
        if (!sigismember(&pending, SIGUSR1) && !sigismember(&pending, SIGUSR2)) break;
        std::this_thread::yield();
    }
    ::sigaction(SIGUSR1, &saved1, nullptr);
    ::sigaction(SIGUSR2, &saved2, nullptr);
    if (failure) std::rethrow_exception(failure);
    EXPECT_GT(sent.load(), 0);
}

CORIO_TEST(NetFaults, AReadErrorIsRaisedAgainByEveryLaterRead) {
    // asyncio's reader keeps the connection's exception(): a later read never passes the
    // reset off as a clean end (which would let a truncated message look complete).
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        reset(link.peer);
        auto& reader = link.ours.first;
        CO_CATCH(std::system_error, first, reader.read(100));
        if (!first) {
            // A kernel that reports the RST as EOF has no error to keep.
            link.ours.second.close();
            co_return;
        }
        EXPECT_EQ(first->code().value(), ECONNRESET);
        EXPECT_FALSE(reader.at_eof());
        std::exception_ptr kept = reader.exception();
        EXPECT_TRUE(kept != nullptr);
        CO_CATCH(std::system_error, by_read, reader.read(100));
        CO_CATCH(std::system_error, by_readline, reader.readline());
        CO_CATCH(std::system_error, by_readexactly, reader.readexactly(1));
        CO_CATCH(std::system_error, by_readuntil, reader.readuntil("\r\n"));
        std::vector<char> buf(16);
        CO_CATCH(std::system_error, by_read_into, reader.read_into(buf));
        for (const auto* e : {&by_read, &by_readline, &by_readexactly, &by_readuntil, &by_read_into}) {
            EXPECT_TRUE(e->has_value());
            if (e->has_value()) {
                EXPECT_EQ((*e)->code().value(), ECONNRESET);
            }
        }
        link.ours.second.close();
        Coro<> closed = link.ours.second.wait_closed();
        co_await std::move(closed);
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

// asyncio's transport reads whenever bytes come, so a reset while nobody reads closes it, and a
// task in wait_closed() returns. corio's wait_closed() waited until something touched the
// socket: for ever, on an idle connection.
CORIO_TEST(NetFaults, AResetWhileNobodyReadsClosesTheConnection) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        Task<> waiting = create_task(link.ours.second.wait_closed());
        co_await settle();
        EXPECT_FALSE(waiting.done()) << "an open connection is not closed";
        auto sending = sock_sendall(link.peer, "before the reset");
        co_await std::move(sending);
        co_await settle();
        EXPECT_FALSE(waiting.done()) << "bytes are no loss";
        reset(link.peer);
        auto closed = wait_for(std::move(waiting), 10s);
        co_await std::move(closed);
        EXPECT_TRUE(link.ours.second.is_closing());
        CO_CATCH(std::system_error, error, link.ours.first.read(100));
        CO_ASSERT_TRUE(error.has_value());  // the reset is kept for the reader
        EXPECT_EQ(error->code().value(), ECONNRESET) << error->what();
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}

// The watch stops reading at twice the limit, as asyncio pauses reading; a reader that takes the
// buffered bytes without waiting lets it go on (asyncio resumes reading), so a reset after that
// still closes the connection.
CORIO_TEST(NetFaults, AResetAfterTheReaderEmptiedAFullBufferClosesTheConnection) {
    auto scenario = []() -> Coro<> {
        RawLink link = co_await raw_link();
        Task<> waiting = create_task(link.ours.second.wait_closed());
        std::string big(200 * 1024, 'x');
        auto sending = sock_sendall(link.peer, big);
        co_await std::move(sending);
        co_await settle();  // the watch reads up to twice the limit (128 KiB), then stops
        std::string got = co_await link.ours.first.read(1024 * 1024);
        EXPECT_GE(got.size(), 2 * default_stream_limit);  // taken from the buffer, without waiting
        co_await settle();
        reset(link.peer);
        auto closed = wait_for(std::move(waiting), 10s);
        co_await std::move(closed);
        EXPECT_TRUE(link.ours.second.is_closing());
    };
    Coro<> checked = without_leaks(scenario);
    co_await std::move(checked);
}
