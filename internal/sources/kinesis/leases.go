package kinesis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
)

// The lease table has the Kinesis Client Library's shape, so operators
// recognise it: one item per shard, keyed by leaseKey (the shard id), with
// leaseOwner, leaseCounter, checkpoint (a sequence number, TRIM_HORIZON,
// LATEST, AT_TIMESTAMP or SHARD_END), checkpointSubSequenceNumber and
// parentShardId. Every change is a conditional write. A worker below its
// share asks the busiest worker for one of its leases by setting handoffTo
// on it; the holder stops reading that shard, waits until everything it
// read is durable, checkpoints, and only then makes the asker the owner, so
// that no record is written by both (a stolen lease would let the old
// holder land buffered objects after the new one had listed the lake).
const (
	shardEnd = "SHARD_END"
)

type lease struct {
	key        string
	owner      string
	counter    int64
	checkpoint string
	parents    []string
	handoffTo  string // a worker that asked the owner for this lease
}

type leaseTable struct {
	ddb  *dynamodb.Client
	name string
}

var errLeaseLost = errors.New("lease lost")

// ensure creates the table (on-demand billing) if it is missing and waits
// until it is ACTIVE, polling (the SDK waiter sleeps 10 s between checks).
func (t *leaseTable) ensure(ctx context.Context) error {
	_, err := t.ddb.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(t.name),
		AttributeDefinitions: []ddbtypes.AttributeDefinition{{AttributeName: aws.String("leaseKey"), AttributeType: ddbtypes.ScalarAttributeTypeS}},
		KeySchema:            []ddbtypes.KeySchemaElement{{AttributeName: aws.String("leaseKey"), KeyType: ddbtypes.KeyTypeHash}},
		BillingMode:          ddbtypes.BillingModePayPerRequest,
	})
	var inUse *ddbtypes.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return fmt.Errorf("lease table %s: %w", t.name, err)
	}
	for i := 0; ; i++ {
		out, err := t.ddb.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(t.name)})
		if err == nil && out.Table.TableStatus == ddbtypes.TableStatusActive {
			return nil
		}
		if i > 600 {
			return fmt.Errorf("lease table %s did not become active", t.name)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// create adds a lease for a shard unless one exists.
func (t *leaseTable) create(ctx context.Context, shard string, parents []string) error {
	item := map[string]ddbtypes.AttributeValue{
		"leaseKey":     &ddbtypes.AttributeValueMemberS{Value: shard},
		"leaseCounter": &ddbtypes.AttributeValueMemberN{Value: "0"},
		"checkpoint":   &ddbtypes.AttributeValueMemberS{Value: ""},
	}
	if len(parents) > 0 {
		item["parentShardId"] = &ddbtypes.AttributeValueMemberSS{Value: parents}
	}
	_, err := t.ddb.PutItem(ctx, &dynamodb.PutItemInput{TableName: aws.String(t.name), Item: item,
		ConditionExpression: aws.String("attribute_not_exists(leaseKey)")})
	var cond *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &cond) {
		return nil
	}
	return err
}

// scan reads every lease.
func (t *leaseTable) scan(ctx context.Context) (map[string]*lease, error) {
	out := map[string]*lease{}
	p := dynamodb.NewScanPaginator(t.ddb, &dynamodb.ScanInput{TableName: aws.String(t.name), ConsistentRead: aws.Bool(true)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			l := &lease{}
			if v, ok := it["leaseKey"].(*ddbtypes.AttributeValueMemberS); ok {
				l.key = v.Value
			}
			if v, ok := it["leaseOwner"].(*ddbtypes.AttributeValueMemberS); ok {
				l.owner = v.Value
			}
			if v, ok := it["leaseCounter"].(*ddbtypes.AttributeValueMemberN); ok {
				l.counter, _ = strconv.ParseInt(v.Value, 10, 64)
			}
			if v, ok := it["checkpoint"].(*ddbtypes.AttributeValueMemberS); ok {
				l.checkpoint = v.Value
			}
			if v, ok := it["parentShardId"].(*ddbtypes.AttributeValueMemberSS); ok {
				l.parents = v.Value
			}
			if v, ok := it["handoffTo"].(*ddbtypes.AttributeValueMemberS); ok {
				l.handoffTo = v.Value
			}
			out[l.key] = l
		}
	}
	return out, nil
}

// take makes owner the holder of an expired or unowned lease, if nobody
// renewed it since counter. A stale handoff request goes with it.
func (t *leaseTable) take(ctx context.Context, l *lease, owner string) (int64, error) {
	next, _, err := t.bump(ctx, l.key, l.counter, "leaseCounter = :c",
		"SET leaseOwner = :me, leaseCounter = :next REMOVE handoffTo", map[string]string{":me": owner})
	return next, err
}

// renew bumps the counter of a lease owner holds and returns the worker
// that asked for it, if any.
func (t *leaseTable) renew(ctx context.Context, key string, counter int64, owner string) (int64, string, error) {
	return t.bump(ctx, key, counter, "leaseCounter = :c AND leaseOwner = :me",
		"SET leaseCounter = :next", map[string]string{":me": owner})
}

// transfer makes to the holder of a lease owner holds at counter: the end
// of a handoff, once everything owner read from the shard is durable.
func (t *leaseTable) transfer(ctx context.Context, key string, counter int64, owner, to string) error {
	_, _, err := t.bump(ctx, key, counter, "leaseCounter = :c AND leaseOwner = :me",
		"SET leaseOwner = :to, leaseCounter = :next REMOVE handoffTo", map[string]string{":me": owner, ":to": to})
	return err
}

// askHandoff asks owner, through the lease, to hand it over to me. It is a
// no-op if the lease changed hands or someone else asked first.
func (t *leaseTable) askHandoff(ctx context.Context, key, owner, me string) (bool, error) {
	_, err := t.ddb.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(t.name),
		Key:                 map[string]ddbtypes.AttributeValue{"leaseKey": &ddbtypes.AttributeValueMemberS{Value: key}},
		UpdateExpression:    aws.String("SET handoffTo = :me"),
		ConditionExpression: aws.String("leaseOwner = :owner AND attribute_not_exists(handoffTo)"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":owner": &ddbtypes.AttributeValueMemberS{Value: owner},
			":me":    &ddbtypes.AttributeValueMemberS{Value: me},
		},
	})
	var cf *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return false, nil
	}
	return err == nil, err
}

// bump applies update if cond holds at counter, moving the counter on; it
// returns the new counter and the lease's handoffTo after the update.
func (t *leaseTable) bump(ctx context.Context, key string, counter int64, cond, update string, names map[string]string) (int64, string, error) {
	values := map[string]ddbtypes.AttributeValue{
		":c":    &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(counter, 10)},
		":next": &ddbtypes.AttributeValueMemberN{Value: strconv.FormatInt(counter+1, 10)},
	}
	for k, v := range names {
		values[k] = &ddbtypes.AttributeValueMemberS{Value: v}
	}
	out, err := t.ddb.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       map[string]ddbtypes.AttributeValue{"leaseKey": &ddbtypes.AttributeValueMemberS{Value: key}},
		UpdateExpression:          aws.String(update),
		ConditionExpression:       aws.String(cond),
		ExpressionAttributeValues: values,
		ReturnValues:              ddbtypes.ReturnValueAllNew,
	})
	var cf *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return 0, "", errLeaseLost
	}
	if err != nil {
		return 0, "", err
	}
	handoff := ""
	if v, ok := out.Attributes["handoffTo"].(*ddbtypes.AttributeValueMemberS); ok {
		handoff = v.Value
	}
	return counter + 1, handoff, nil
}

// checkpoint records a shard's position, only while owner holds the lease.
func (t *leaseTable) checkpoint(ctx context.Context, key, owner, seq string) error {
	_, err := t.ddb.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:           aws.String(t.name),
		Key:                 map[string]ddbtypes.AttributeValue{"leaseKey": &ddbtypes.AttributeValueMemberS{Value: key}},
		UpdateExpression:    aws.String("SET checkpoint = :seq, checkpointSubSequenceNumber = :zero"),
		ConditionExpression: aws.String("leaseOwner = :me"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{
			":seq":  &ddbtypes.AttributeValueMemberS{Value: seq},
			":zero": &ddbtypes.AttributeValueMemberN{Value: "0"},
			":me":   &ddbtypes.AttributeValueMemberS{Value: owner},
		},
	})
	var cf *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return errLeaseLost
	}
	return err
}

// release gives a lease up so another worker takes it at once.
func (t *leaseTable) release(ctx context.Context, key, owner string) error {
	_, err := t.ddb.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                 aws.String(t.name),
		Key:                       map[string]ddbtypes.AttributeValue{"leaseKey": &ddbtypes.AttributeValueMemberS{Value: key}},
		UpdateExpression:          aws.String("REMOVE leaseOwner, handoffTo"),
		ConditionExpression:       aws.String("leaseOwner = :me"),
		ExpressionAttributeValues: map[string]ddbtypes.AttributeValue{":me": &ddbtypes.AttributeValueMemberS{Value: owner}},
	})
	var cf *ddbtypes.ConditionalCheckFailedException
	if errors.As(err, &cf) {
		return nil
	}
	return err
}
