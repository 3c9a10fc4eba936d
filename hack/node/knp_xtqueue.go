package networkpolicy

// Added by the ACGS build (hack/build-node.sh): kernels built without CONFIG_NFT_QUEUE (the
// local machines) reject nftables' `queue` expression, but still have the xtables NFQUEUE target,
// which nftables can call through nft_compat. Same queue, same verdicts, same rules otherwise.

import (
	"encoding/binary"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/xt"
)

// xtQueue sends a packet to nfqueue `num` with the NFQUEUE target, revision 3
// (struct xt_NFQ_info_v3 {u16 queuenum; u16 queues_total; u16 flags}, XT_ALIGNed to 8 bytes).
func xtQueue(num uint16, bypass bool) expr.Any {
	info := make(xt.Unknown, 8)
	binary.NativeEndian.PutUint16(info[0:], num)
	binary.NativeEndian.PutUint16(info[2:], 1)
	if bypass {
		binary.NativeEndian.PutUint16(info[4:], 1) // NFQ_FLAG_BYPASS
	}
	return &expr.Target{Name: "NFQUEUE", Rev: 3, Info: &info}
}
