package io.uffdemu.bench;

import static org.assertj.core.api.Assertions.assertThat;

import com.google.protobuf.ByteString;
import io.grpc.stub.StreamObserver;
import io.uffdemu.api.v1.CopyRequest;
import io.uffdemu.api.v1.HandleAttach;
import io.uffdemu.api.v1.HandleRequest;
import io.uffdemu.api.v1.HandleRequestBatch;
import io.uffdemu.api.v1.HandleResponse;
import io.uffdemu.api.v1.IoctlResult;
import io.uffdemu.api.v1.UffdMsg;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

class TransportFloorTest {
    /** Records what the stub sends. */
    static final class Recorder implements StreamObserver<HandleResponse> {
        final List<HandleResponse> sent = new ArrayList<>();
        boolean completed;

        @Override
        public void onNext(HandleResponse r) {
            sent.add(r);
        }

        @Override
        public void onError(Throwable t) {
            throw new AssertionError(t);
        }

        @Override
        public void onCompleted() {
            completed = true;
        }
    }

    @Test
    void theStubKeepsItsFaultsInFlightInBatchesAndAnswersEveryCopy() {
        Recorder out = new Recorder();
        StreamObserver<HandleRequest> in = new TransportFloor.Stub().handle(out);
        in.onNext(HandleRequest.newBuilder().setAttach(HandleAttach.newBuilder().setPid(5).setMaxBatch(2)).build());
        // 5 faults in flight, 2 messages per batch: 2 + 2 + 1, distinct pages
        assertThat(out.sent).extracting(r -> r.getMsgs().getMsgsCount()).containsExactly(2, 2, 1);
        List<Long> addresses = out.sent.stream().flatMap(r -> r.getMsgs().getMsgsList().stream())
                .map(m -> m.getPagefault().getAddress()).toList();
        assertThat(addresses).doesNotHaveDuplicates().allMatch(a -> a % 4096 == 0);
        out.sent.clear();

        HandleRequestBatch.Builder b = HandleRequestBatch.newBuilder();
        for (int i = 0; i < 3; i++) {
            b.addRequests(HandleRequest.newBuilder().setRequestId(10 + i).setCopy(CopyRequest.newBuilder()
                    .setDst(addresses.get(i)).setData(ByteString.copyFrom(new byte[4096]))));
        }
        in.onNext(HandleRequest.newBuilder().setBatch(b).build());
        // one result per COPY, in order, then the three pages fault again (2 + 1)
        assertThat(out.sent.getFirst().getResults().getResultsList()).extracting(IoctlResult::getRequestId,
                IoctlResult::getBytes).containsExactly(org.assertj.core.groups.Tuple.tuple(10L, 4096L),
                        org.assertj.core.groups.Tuple.tuple(11L, 4096L), org.assertj.core.groups.Tuple.tuple(12L, 4096L));
        assertThat(out.sent.subList(1, out.sent.size())).extracting(r -> r.getMsgs().getMsgsCount())
                .containsExactly(2, 1);
        assertThat(out.sent.subList(1, out.sent.size()).stream().flatMap(r -> r.getMsgs().getMsgsList().stream())
                .map(UffdMsg::getEvent)).containsOnly(0x12);
        in.onCompleted();
        assertThat(out.completed).isTrue();
    }

    @Test
    @Timeout(120)
    void aRunBetweenTwoJvmsCountsItsFaultsAndBothProcessesCpu() throws Exception {
        for (boolean direct : new boolean[] {false, true}) {
            try (TransportFloor.Peer peer = new TransportFloor.Peer(direct, direct)) {
                TransportFloor.Result r = peer.run(20_000, 8, 4); // enough CPU for /proc's 10 ms ticks
                assertThat(r.itemsPerSecond()).isPositive();
                assertThat(r.clientCpuMicros()).isPositive();
                assertThat(r.serverCpuMicros()).isPositive();
                assertThat(r.cpuMicros()).isEqualTo(r.clientCpuMicros() + r.serverCpuMicros());
            }
        }
    }
}
