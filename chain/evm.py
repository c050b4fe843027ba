"""EVMLedger: settlement on a real EVM through web3, with the project's Vyper contracts.

Two ways to reach a chain: :meth:`EVMLedger.embedded` runs py-evm in this process (web3's
EthereumTesterProvider), and :meth:`EVMLedger.connect` talks JSON-RPC to any node. The
operator (first unlocked account of the node) deploys the token and escrow, mints and funds
gas; agents sign their own transactions locally (see :class:`chain.ledger.Ledger`).

Reverts are translated at this boundary into the same typed errors the memory ledger raises.
Transactions are estimated before they are sent, so a bad one fails without touching the chain.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any, cast

import requests
from eth_tester import EthereumTester, PyEVMBackend
from eth_tester.exceptions import TransactionFailed as TesterFailed
from eth_typing import BlockNumber, ChecksumAddress, Hash32
from eth_utils import keccak
from eth_utils.exceptions import ValidationError as EthValidationError
from hexbytes import HexBytes
from web3 import EthereumTesterProvider, HTTPProvider, Web3
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError
from web3.providers.rpc.utils import REQUEST_RETRY_ALLOWLIST, ExceptionRetryConfiguration
from web3.types import RPCEndpoint, TxParams, Wei

from agora.chain.addressbook import AddressBook, check, record
from agora.chain.compiler import compile_contract
from agora.chain.embedded import _one_shot_gas_estimate, _SerialTesterProvider, _wall_clock_vm
from agora.chain.errors import ChainError, NodeUnavailable, SignedTxMismatch, TransactionFailed, error_for_reason
from agora.chain.evm_ops import Contracts, contract_call
from agora.chain.ledger import Ledger, OneWriteAtATimePerSender, check_ref
from agora.chain.offchain import domain
from agora.chain.signed import check_signed
from agora.chain.types import (
    BatchAccount,
    ChannelState,
    EscrowState,
    EscrowStatus,
    LedgerEvent,
    OpKind,
    Positions,
    Prepared,
    Receipt,
    StakeState,
    check_address,
    check_id,
)

_STATUS: dict[int, EscrowStatus] = {1: "open", 2: "released", 3: "refunded", 4: "disputed"}
GAS_ALLOWANCE_WEI = 10**18  # native coin handed to each account for its transactions
_TxHash = Hash32 | HexBytes  # what web3 returns for a sent transaction, and what it takes to look one up


def _reverted(exc: Exception) -> ChainError:
    text = str(exc.args[0] if exc.args else exc)
    return error_for_reason(text.removeprefix("execution reverted: "))


def c_name(contract: Any) -> str:
    """The contract's name in the address book, from the ledger attribute that holds it."""
    name: str = contract._agora_name
    return name


def _checksummed(address: str) -> ChecksumAddress:
    """web3's type for the addresses this ledger passes it: already checksummed (the Ledger's
    write methods checked them; nodes return them so), and web3 checks again on use."""
    return cast(ChecksumAddress, address)


class EVMLedger(OneWriteAtATimePerSender, Ledger):
    """A ledger whose state lives in the Token and Escrow contracts on an EVM chain.

    Safe to call from many threads at once (``concurrent``): the node orders transactions,
    each sender's nonces are drawn under that sender's lock (the nonce manager is that lock
    plus the node's pending count, which stays right even across processes), the operator's
    under its own."""

    concurrent = True

    def __init__(
        self,
        w3: Web3,
        operator: str | None = None,
        token_name: str = "Agora",
        withdraw_delay: int = 3600,
        address_book: AddressBook | None = None,
        arbiter: str | None = None,
        treasury: str | None = None,
        unbond_delay: int = 86_400,
        confirmations: int = 1,
        confirmation_timeout: float = 120.0,
        write_timeout: float = 120.0,
    ) -> None:
        self.w3 = w3
        self.write_timeout = write_timeout  # the longest a write waits for its receipt (NodeUnavailable past it)
        self.confirmations = max(1, int(confirmations))
        self.confirmation_timeout = confirmation_timeout
        self.operator = operator or (address_book.operator if address_book else w3.eth.accounts[0])
        self.chain_id = w3.eth.chain_id
        self._seen: dict[str, None] = {}
        self._scanned_to = 0  # the next block whose Transfer events name holders to add to _seen
        self._receipts: list[Receipt] = []
        self._operator_lock = threading.Lock()
        if address_book is None:
            arbiter = arbiter or self.operator
            treasury = treasury or self.operator
            self.token = self._deploy("Token", token_name, self.symbol, self.decimals)
            self.escrow_contract = self._deploy("Escrow", self.token.address, arbiter)
            self.channel_contract = self._deploy("PaymentChannel", self.token.address)
            self.batch_contract = self._deploy("BatchSettlement", self.token.address, withdraw_delay)
            self.staking_contract = self._deploy("Staking", self.token.address, arbiter, treasury, unbond_delay, self.escrow_contract.address)
        else:
            found = {name: self._at(name, d.address) for name, d in address_book.contracts.items()}
            check(address_book, self.chain_id, {n: bytes(w3.eth.get_code(c.address)) for n, c in found.items()})
            self.token, self.escrow_contract = found["Token"], found["Escrow"]
            self.channel_contract, self.batch_contract = found["PaymentChannel"], found["BatchSettlement"]
            self.staking_contract = found["Staking"]
            self._rebuild_accounts()
        self.arbiter = self.escrow_contract.functions.resolver().call()
        self.treasury = self.staking_contract.functions.treasury().call()

    def _holders(self) -> tuple[Any, ...]:
        """The contracts that hold locked tokens."""
        return (self.escrow_contract, self.channel_contract, self.batch_contract, self.staking_contract)

    def _rebuild_accounts(self) -> None:
        """Every holder the token's Transfer events name, read from the block after the last
        read: conservation covers past runs, and an address this process never dealt with that
        got tokens by a raw transfer (another client of the same chain) — not only the ones its
        own writes named, which gave false alarms."""
        contracts = {c.address for c in self._holders()}
        latest = self.w3.eth.block_number
        if latest < self._scanned_to:
            return
        for event in self.token.events.Transfer.get_logs(from_block=self._scanned_to, to_block=latest):
            for who in (event["args"]["sender"], event["args"]["receiver"]):
                if int(who, 16) != 0 and who not in contracts:
                    self._seen.setdefault(who)
        self._scanned_to = latest + 1

    def address_book(self) -> AddressBook:
        """The record of this ledger's deployment, to save and reuse on later runs."""
        contracts = {"Token": self.token, **{c_name(c): c for c in self._holders()}}
        return record(
            self.chain_id,
            self.operator,
            {n: c.address for n, c in contracts.items()},
            {n: bytes(self.w3.eth.get_code(c.address)) for n, c in contracts.items()},
        )

    @classmethod
    def embedded(cls, **options: Any) -> EVMLedger:
        """A fresh in-process chain (py-evm): nothing to install or start. Its blocks carry
        the wall clock as anvil's do (see ``_WallClockVM``)."""
        backend = PyEVMBackend(vm_configuration=((0, _wall_clock_vm()),))
        backend.chain.gas_estimator = _one_shot_gas_estimate
        return cls(Web3(_SerialTesterProvider(EthereumTester(backend))), **options)

    @classmethod
    def connect(cls, url: str, address_book: str | None = None, *, timeout: float = 10.0, retries: int = 8, **options: Any) -> EVMLedger:
        """A ledger on any JSON-RPC node whose operator account is unlocked (anvil, a devnet).

        Without ``address_book`` the contracts are deployed afresh; with one, the deployment it
        records is found and checked (chain id, code, source) instead."""
        retry = ExceptionRetryConfiguration(
            errors=(ConnectionError, requests.ConnectionError, requests.HTTPError, requests.Timeout),
            retries=retries,  # 8: 0.1 s doubling, about 13 s in all (a node restart takes well under 1 s)
            backoff_factor=0.1,
            # resending the same signed bytes is idempotent: same hash, same nonce
            method_allowlist=[*REQUEST_RETRY_ALLOWLIST, "eth_sendRawTransaction"],
        )
        w3 = Web3(HTTPProvider(url, exception_retry_configuration=retry, request_kwargs={"timeout": timeout}))
        if not w3.is_connected():
            raise TransactionFailed(f"no JSON-RPC node answers at {url}")
        return cls(w3, address_book=AddressBook.load(address_book) if address_book else None, **options)

    # -- reads -------------------------------------------------------------------------
    def balance_of(self, address: str) -> int:
        balance: int = self.token.functions.balanceOf(address).call()
        return balance

    def allowance(self, owner: str, spender: str) -> int:
        allowed: int = self.token.functions.allowance(check_address(owner, "owner"), check_address(spender, "spender")).call()
        return allowed

    def settlement(self, settler: str, ref: str) -> str | None:
        found = self.token.functions.settlement(check_address(settler, "settler"), bytes.fromhex(check_ref(ref)[2:])).call()
        return None if int.from_bytes(found, "big") == 0 else "0x" + bytes(found).hex()

    def escrow(self, escrow_id: str) -> EscrowState:
        escrow_id = check_id(escrow_id)
        key = bytes.fromhex(escrow_id[2:])
        buyer, arbiter, amount, deadline, state = self.escrow_contract.functions.deals(key).call()
        if state == 0:
            raise error_for_reason("escrow: unknown", escrow_id)
        zero = int(arbiter, 16) == 0
        payees = self.escrow_contract.functions.payees_of(key).call()
        mask = self.escrow_contract.functions.drawable(key).call()
        drawn: list[int] = []
        if mask and self.escrow_contract.functions.drawn_total(key).call():
            drawn = [self.escrow_contract.functions.drawn(key, i).call() for i in range(len(payees))]
        return EscrowState(
            escrow_id=escrow_id.lower(),
            buyer=buyer,
            arbiter=None if zero else arbiter,
            payees=payees,
            shares_bps=self.escrow_contract.functions.shares_of(key).call(),
            amount=amount,
            deadline=deadline,
            status=_STATUS[state],
            drawable=[i for i in range(len(payees)) if mask >> i & 1],
            drawn=drawn,
        )

    def channel(self, channel_id: str) -> ChannelState:
        channel_id = check_id(channel_id, "channel_id")
        sender, recipient, deposit, nonce, expiration = self.channel_contract.functions.channels(bytes.fromhex(channel_id[2:])).call()
        if int(sender, 16) == 0:
            raise error_for_reason("channel: unknown", channel_id)
        return ChannelState(channel_id=channel_id, sender=sender, recipient=recipient, deposit=deposit, nonce=nonce, expiration=expiration)

    def batch_account(self, buyer: str) -> BatchAccount:
        fns = self.batch_contract.functions
        return BatchAccount(
            deposit=fns.deposit_of(buyer).call(),
            last_epoch=fns.last_epoch(buyer).call(),
            unlock_at=fns.unlock_at(buyer).call(),
            requested=fns.requested(buyer).call(),
        )

    def domains(self) -> dict[str, dict[str, Any]]:
        return {
            "channel": domain("AgoraChannel", self.chain_id, self.channel_contract.address),
            "batch": domain("AgoraBatch", self.chain_id, self.batch_contract.address),
            "escrow": domain("AgoraEscrow", self.chain_id, self.escrow_contract.address),
        }

    def total_supply(self) -> int:
        supply: int = self.token.functions.totalSupply().call()
        return supply

    def escrowed_total(self) -> int:
        return sum(self.balance_of(c.address) for c in self._holders())

    _EVENTS = {
        "escrow_contract": ("Opened", "Released", "Refunded", "Disputed", "Drawn"),
        "channel_contract": ("ChannelOpened", "ChannelClaimed", "ChannelReclaimed"),
        "batch_contract": ("Deposited", "WithdrawalRequested", "Withdrawn", "PartSkipped", "EpochSettled"),
        "staking_contract": ("Staked", "UnstakeRequested", "Unstaked", "Slashed"),
    }

    def events(self, from_block: int = 0) -> list[LedgerEvent]:
        """One ``eth_getLogs`` over the four contracts, each log decoded by its topic: a node
        scans the chain once, not once per event kind (thirteen scans took 47 s of a chaos run's
        checks on the embedded chain)."""
        decoders = {}
        for attr, kinds in self._EVENTS.items():
            contract = getattr(self, attr)
            for kind in kinds:
                event = getattr(contract.events, kind)()
                decoders[(contract.address.lower(), bytes(HexBytes(event.topic)))] = (kind, event)
        logs = self.w3.eth.get_logs({"fromBlock": from_block, "toBlock": "latest", "address": [getattr(self, attr).address for attr in self._EVENTS]})
        found = []
        for raw in logs:
            decoder = decoders.get((raw["address"].lower(), bytes(raw["topics"][0]))) if raw["topics"] else None
            if decoder is not None:
                found.append(((raw["blockNumber"], raw["logIndex"]), decoder[0], decoder[1].process_log(raw)))
        return [
            LedgerEvent(
                kind=kind,
                block=log["blockNumber"],
                tx_hash="0x" + bytes(log["transactionHash"]).hex(),
                args={k: "0x" + bytes(v).hex() if isinstance(v, (bytes, bytearray)) else v for k, v in log["args"].items()},
            )
            for _, kind, log in sorted(found, key=lambda f: f[0])
        ]

    def positions(self) -> Positions:
        """Rebuilt from events: the ids come from the logs, the states from the contracts."""
        esc, ch = self.escrow_contract.events, self.channel_contract.events
        escrow_ids = {"0x" + bytes(e["args"]["deal_id"]).hex() for e in esc.Opened.get_logs(from_block=0)}
        channel_ids = {"0x" + bytes(e["args"]["channel_id"]).hex() for e in ch.ChannelOpened.get_logs(from_block=0)}
        buyers = {e["args"]["buyer"] for e in self.batch_contract.events.Deposited.get_logs(from_block=0)}
        providers = {e["args"]["provider"] for e in self.staking_contract.events.Staked.get_logs(from_block=0)}
        escrows = [s for s in map(self.escrow, sorted(escrow_ids)) if s.status in ("open", "disputed")]
        channels = [c for c in map(self.channel, sorted(channel_ids)) if c.deposit]
        deposits = {b: self.batch_account(b).deposit for b in sorted(buyers)}
        stakes = {p: self.stake_of(p).stake for p in sorted(providers)}
        return Positions(
            escrows=escrows,
            channels=channels,
            deposits={b: d for b, d in deposits.items() if d},
            stakes={p: v for p, v in stakes.items() if v},
        )

    def stake_of(self, provider: str) -> StakeState:
        fns = self.staking_contract.functions
        return StakeState(stake=fns.stakes(provider).call(), unlock_at=fns.unlock_at(provider).call(), requested=fns.requested(provider).call())

    def accounts(self) -> list[str]:
        self._rebuild_accounts()
        return list(self._seen)

    def receipts(self) -> list[Receipt]:
        return list(self._receipts)

    def now(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def block_number(self) -> int:
        return self.w3.eth.block_number

    def gas_price(self) -> int:
        return self.w3.eth.gas_price

    # -- operator ----------------------------------------------------------------------
    def sync_time(self, timestamp: int) -> int:
        target = int(timestamp)
        if target <= self.now():
            return self.now()
        provider = self.w3.provider
        if isinstance(provider, EthereumTesterProvider):
            tester = provider.ethereum_tester
            assert tester is not None  # the provider makes one when it is not given one
            with getattr(provider, "_lock", contextlib.nullcontext()):  # no request mid-way
                backend = tester.backend
                backend.chain.header = backend.chain.header.copy(timestamp=target)
                backend.mine_blocks()  # one empty block at ``target``
        else:  # anvil / hardhat style nodes
            provider.make_request(RPCEndpoint("evm_setNextBlockTimestamp"), [target])
            provider.make_request(RPCEndpoint("evm_mine"), [])
        return self.now()

    def _mint(self, to: str, amount: int) -> Receipt:
        self._seen.setdefault(to)
        return self._operator_tx("mint", self.token.functions.mint(to, amount))

    def fund_gas(self, address: str) -> Receipt | None:
        if self.w3.eth.get_balance(_checksummed(address)) >= GAS_ALLOWANCE_WEI // 2:
            return None
        tx: TxParams = {"from": self.operator, "to": address, "value": Wei(GAS_ALLOWANCE_WEI)}
        with self._operator_lock:
            tx_hash = self.w3.eth.send_transaction(tx)
        return self._receipt("fund_gas", self.operator, tx_hash)

    # -- writes --------------------------------------------------------------------------
    def _call(self, op: str, args: dict[str, Any]) -> Any:
        """The contract function call that performs ``op`` (chain.evm_ops)."""
        contracts = Contracts(self.token, self.escrow_contract, self.channel_contract, self.batch_contract, self.staking_contract)
        return contract_call(contracts, op, args)

    def prepare(self, sender: str, op: OpKind, args: dict[str, Any]) -> Prepared:
        try:
            tx = self._call(op, args).build_transaction({"from": sender, "nonce": self.w3.eth.get_transaction_count(_checksummed(sender), "pending")})
        except (TesterFailed, ContractLogicError) as exc:
            raise _reverted(exc) from None
        except (EthValidationError, Web3RPCError) as exc:
            raise TransactionFailed(f"{op} from {sender} rejected by the node: {exc}") from None
        return Prepared(sender=sender, op=op, args=args, tx=dict(tx))

    def submit(self, prepared: Prepared, signed: bytes | None) -> Receipt:
        """Send ``signed`` once it is checked to be exactly the prepared transaction (target,
        data, value, gas, chain id, nonce, signer: SignedTxMismatch otherwise) and its nonce is
        the sender's next one (a nonce ahead would sit unmined in the node's queue)."""
        if signed is None:
            raise TransactionFailed(f"{prepared.op} needs a signed transaction")
        if prepared.tx is None:
            raise TransactionFailed(f"{prepared.op} was not prepared as a transaction")
        tx = check_signed(prepared.tx, prepared.sender, signed, self.chain_id)
        next_nonce = self._node(lambda: self.w3.eth.get_transaction_count(_checksummed(prepared.sender), "pending"))
        if tx["nonce"] > next_nonce:
            raise SignedTxMismatch(f"signed: nonce {tx['nonce']} is ahead of {prepared.sender}'s next nonce {next_nonce}; the node would hold it unmined")
        tx_hash: _TxHash | None
        try:
            tx_hash = self.w3.eth.send_raw_transaction(signed)
        except (TesterFailed, ContractLogicError) as exc:
            raise _reverted(exc) from None
        except Web3RPCError as exc:
            tx_hash = self._already_sent(signed, exc)  # a retried send the node had already taken
            if tx_hash is None:
                raise TransactionFailed(f"{prepared.op} from {prepared.sender} rejected by the node: {exc}") from None
        except EthValidationError as exc:  # e.g. no native coin for gas
            raise TransactionFailed(f"{prepared.op} from {prepared.sender} rejected by the node: {exc}") from None
        self._seen.setdefault(prepared.sender)
        if prepared.op == "transfer":
            self._seen.setdefault(prepared.args["to"])
        if prepared.op == "transfer_from_many":
            self._seen.update(dict.fromkeys(prepared.args["tos"]))
        if prepared.op in ("open_escrow", "settle_batch"):
            self._seen.update(dict.fromkeys(prepared.args["payees"]))
        if prepared.op == "slash":
            self._seen.update(dict.fromkeys([prepared.args["buyer"], self.treasury]))
        return self._receipt(prepared.op, prepared.sender, tx_hash)

    def _mined_revert(self, op: str, sender: str, tx_hash: _TxHash, receipt: Any) -> ChainError:
        """The typed error of a transaction that passed its estimate but reverted when mined (the
        state moved in between: a race, or a node restarted from its state dump). A receipt has
        no reason: the call is replayed on the state before its block to read the contract's."""
        where = f"{op} from {sender} reverted in block {receipt['blockNumber']}"
        try:
            tx = self.w3.eth.get_transaction(tx_hash)
            call: TxParams = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "value": tx["value"], "gas": tx["gas"]}
            self.w3.eth.call(call, block_identifier=BlockNumber(max(0, receipt["blockNumber"] - 1)))
        except (TesterFailed, ContractLogicError) as exc:
            found = _reverted(exc)
            return type(found)(f"{where}: {found}")
        except Exception:  # noqa: BLE001 - the replay is for the message only: the revert stands
            pass
        return TransactionFailed(f"{where} (its replay on the state before did not revert: the state moved within the block)")

    def _already_sent(self, signed: bytes, exc: Exception) -> _TxHash | None:
        """After a lost response the retried send is refused as a duplicate: find the first."""
        text = str(exc).lower()
        if not any(k in text for k in ("already known", "nonce too low", "already imported")):
            return None
        tx_hash = Hash32(keccak(signed))
        try:
            self.w3.eth.get_transaction(tx_hash)
        except Exception:  # noqa: BLE001 - not found means it really was refused
            return None
        return tx_hash

    # -- helpers -------------------------------------------------------------------------
    def _at(self, name: str, address: str) -> Any:
        contract: Any = self.w3.eth.contract(address=_checksummed(address), abi=compile_contract(name)["abi"])
        contract._agora_name = name
        return contract

    def _deploy(self, name: str, *args: Any) -> Any:
        art = compile_contract(name)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        tx_hash = factory.constructor(*args).transact({"from": self.operator})
        address = self.w3.eth.wait_for_transaction_receipt(tx_hash)["contractAddress"]
        if address is None:  # a deployment's receipt always names what it created
            raise TransactionFailed(f"deploying {name} created no contract")
        return self._at(name, address)

    def _operator_tx(self, op: str, call: Any) -> Receipt:
        try:
            with self._operator_lock:  # the operator's nonces, one at a time
                tx_hash = call.transact({"from": self.operator})
        except (TesterFailed, ContractLogicError) as exc:
            raise _reverted(exc) from None
        return self._receipt(op, self.operator, tx_hash)

    def _await_confirmations(self, block: int, tx_hash: _TxHash) -> None:
        """On a real node a write counts once ``confirmations`` blocks hold it (1: included).
        If the transaction left the chain meanwhile (a reorg), that is a failure, not a success."""
        if self.confirmations <= 1:
            return
        deadline = time.monotonic() + self.confirmation_timeout
        while self.w3.eth.block_number < block + self.confirmations - 1:
            if time.monotonic() > deadline:
                raise TransactionFailed(f"{tx_hash.hex()} has fewer than {self.confirmations} confirmations after {self.confirmation_timeout:.0f} s")
            time.sleep(0.05)
        if self.w3.eth.get_transaction_receipt(tx_hash)["blockNumber"] != block:
            raise TransactionFailed(f"{tx_hash.hex()} moved out of block {block} (reorg)")

    def _node(self, call: Callable[[], Any]) -> Any:
        """A read of the node that a write needs, its failure to answer named as such."""
        try:
            return call()
        except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as exc:
            raise NodeUnavailable(f"the chain node did not answer ({type(exc).__name__})") from None

    def _receipt(self, op: str, sender: str, tx_hash: _TxHash) -> Receipt:
        try:  # nodes mine within ms; one that holds a write past write_timeout is reported, not waited on
            r = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.write_timeout, poll_latency=0.005)
        except TimeExhausted:
            raise NodeUnavailable(
                f"the chain node did not mine {op} from {sender} (0x{bytes(tx_hash).hex()}) within {self.write_timeout:g} s; it may still land"
            ) from None
        except (requests.ConnectionError, requests.Timeout) as exc:
            raise NodeUnavailable(f"the chain node stopped answering while {op} from {sender} waited for its receipt ({type(exc).__name__})") from None
        if r["status"] != 1:
            raise self._mined_revert(op, sender, tx_hash, r)
        self._await_confirmations(r["blockNumber"], tx_hash)
        receipt = Receipt(
            op=op,
            sender=sender,
            tx_hash="0x" + bytes(r["transactionHash"]).hex(),
            block=r["blockNumber"],
            gas_used=r["gasUsed"],
            gas_cost_wei=r["gasUsed"] * r.get("effectiveGasPrice", 0),
        )
        self._receipts.append(receipt)
        return receipt
