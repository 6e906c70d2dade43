// Sign-In with Ethereum through the browser's EIP-1193 provider (window.ethereum): the one thing Blazor cannot do
// from the server. The message is built and checked on the server; this module only asks the wallet.

function provider() {
    const ethereum = window.ethereum;
    if (!ethereum || typeof ethereum.request !== 'function')
        throw new Error('No Ethereum wallet found in this browser. Install one (for example MetaMask), then reload the page.');
    return ethereum;
}

/** Asks the wallet for an account and its current chain: { address, chainId }. */
export async function connect() {
    const ethereum = provider();
    const accounts = await ethereum.request({ method: 'eth_requestAccounts' });
    if (!Array.isArray(accounts) || accounts.length === 0) throw new Error('The wallet shared no account.');
    const chainId = await ethereum.request({ method: 'eth_chainId' });
    return { address: accounts[0], chainId: Number(BigInt(chainId)) };
}

/** EIP-191 personal_sign of the message (as UTF-8, hex-encoded as wallets expect) by the address. */
export async function sign(message, address) {
    const hex = '0x' + Array.from(new TextEncoder().encode(message), b => b.toString(16).padStart(2, '0')).join('');
    return await provider().request({ method: 'personal_sign', params: [hex, address] });
}
