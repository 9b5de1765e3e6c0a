import { DataTypes, Model, type CreationOptional, type InferAttributes, type InferCreationAttributes, type Sequelize } from 'sequelize'

/**
 * What a user or an admin did (docs/protocol.md §8, audit log). No foreign keys on
 * purpose: the record outlives the user or robot it names.
 */
export class AuditEvent extends Model<InferAttributes<AuditEvent>, InferCreationAttributes<AuditEvent>> {
  declare id: CreationOptional<number>
  declare at: Date
  declare actorId: number | null
  declare actor: string | null
  declare action: string
  declare robotUuid: string | null
  declare targetUserId: number | null
  declare details: Record<string, unknown> | null
  declare ip: string | null

  static initModel (sequelize: Sequelize): typeof AuditEvent {
    const json = sequelize.getDialect() === 'postgres' ? DataTypes.JSONB : DataTypes.JSON
    return AuditEvent.init({
      id: { type: DataTypes.INTEGER, primaryKey: true, autoIncrement: true },
      at: { type: DataTypes.DATE, allowNull: false },
      actorId: { type: DataTypes.INTEGER, allowNull: true },
      actor: { type: DataTypes.STRING(150), allowNull: true },
      action: { type: DataTypes.STRING(64), allowNull: false },
      robotUuid: { type: DataTypes.UUID, allowNull: true },
      targetUserId: { type: DataTypes.INTEGER, allowNull: true },
      details: { type: json, allowNull: true },
      ip: { type: DataTypes.STRING(64), allowNull: true }
    }, { sequelize, tableName: 'audit_events', underscored: true, timestamps: false })
  }
}
