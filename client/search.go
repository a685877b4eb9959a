package client

// TxSearch is the answer of GET /v1/txs: committed transactions whose
// ledger events match, newest first.
type TxSearch struct {
	Total int      `json:"total"` // matching transactions, all pages
	Page  int      `json:"page"`
	Next  int      `json:"next,omitempty"` // the ?page= of the following page; absent at the end
	Items []TxInfo `json:"items"`
}
